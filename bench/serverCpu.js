// The CPU time of a server process, for the sections that report what the server spent.

import { readFile } from 'node:fs/promises';

/**
 * The CPU time the server process `pid` has used, in ns, from /proc: only when the server runs
 * on this machine (the embedded one); null otherwise. Unlike the wall-clock time it hardly
 * moves when other work shares the CPUs.
 */
export async function serverCpuNs(pid) {
  try {
    const schedstat = await readFile(`/proc/${pid}/schedstat`, 'utf8');
    return Number(schedstat.split(' ')[0]);
  } catch {
    return null;
  }
}
