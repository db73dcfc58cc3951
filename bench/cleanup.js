// Whatever the benchmark opens registers how to undo it here; cleanUp() undoes it all in
// reverse order, whether the run succeeded, failed or was interrupted.

const steps = [];
let running;

/** Registers a step; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(step) {
  const entry = { step, done: false };
  steps.push(entry);
  return async () => {
    const index = steps.indexOf(entry);
    if (index !== -1) steps.splice(index, 1);
    await runStep(entry);
  };
}

/** Runs every registered step, newest first. A failing step is reported and the rest still run. */
export function cleanUp() {
  running ??= (async () => {
    while (steps.length > 0) await runStep(steps.pop());
  })().finally(() => {
    running = undefined;
  });
  return running;
}

async function runStep(entry) {
  if (entry.done) return;
  entry.done = true;
  try {
    await entry.step();
  } catch (error) {
    process.stderr.write(`bench: cleanup step failed: ${error.message}\n`);
  }
}

/** Resolves after `ms` with `value`; the timer does not keep the process alive. */
export function timeout(ms, value) {
  return new Promise((resolve) => setTimeout(resolve, ms, value).unref());
}
