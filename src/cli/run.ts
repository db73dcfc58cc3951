import { createApp } from '../app.js';
import { loadConfig } from '../config/loadConfig.js';
import { createLogger } from '../log.js';
import type { CommonOptions } from './main.js';

/** `projd run`: runs until SIGINT or SIGTERM, then drains the batches in flight and exits 0. */
export async function runCommand(options: CommonOptions): Promise<void> {
  const config = await loadConfig({ file: options.config, env: process.env, cwd: process.cwd() });
  const logger = createLogger({ level: config.log.level });
  const app = createApp(config, { logger });

  let signalled: (signal: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  const onSignal = (name: NodeJS.Signals) => signalled(name);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await Promise.race([app.start(), signal]);
    const received = await signal;
    logger.info({ signal: received }, 'daemon.stopping');
  } finally {
    // The batch in flight commits or rolls back; past the deadline the process exits anyway,
    // and PostgreSQL rolls back whatever was left open.
    const deadline = setTimeout(() => {
      logger.warn({ shutdownTimeoutMs: config.shutdownTimeout }, 'daemon.shutdown_timeout');
      process.exit();
    }, config.shutdownTimeout);
    deadline.unref();
    await app.stop();
    clearTimeout(deadline);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
