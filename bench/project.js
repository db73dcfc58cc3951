// A projd project as a user lays it out: projd.yaml next to its projections folder, and a
// node_modules folder, where projd keeps its transform cache (empty here: the first run
// transpiles). For the sections that run the projd CLI as a real process.

import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectionsFolder } from './contenders/projd.js';

export const PROJD_BIN = fileURLToPath(new URL('../bin/projd.js', import.meta.url));

/**
 * `copies`: projection files copied into the projections folder; `files`: { name: text } written
 * beside them; `metricsPort`: where /metrics, /healthz and /readyz listen (the default when absent).
 * @returns {Promise<string>} the path of its projd.yaml
 */
export async function writeProject({ batchSize, copies = [], files = {}, metricsPort }) {
  const dir = await projectionsFolder({});
  await mkdir(path.join(dir, 'projections'));
  await mkdir(path.join(dir, 'node_modules'));
  for (const file of copies) await copyFile(file, path.join(dir, 'projections', path.basename(file)));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, 'projections', name), text);
  const metrics = metricsPort === undefined ? '' : `metrics:\n  port: ${metricsPort}\n`;
  const configFile = path.join(dir, 'projd.yaml');
  await writeFile(configFile, `projections:\n  dir: ./projections\n  batchSize: ${batchSize}\n${metrics}log:\n  level: info\n`);
  return configFile;
}
