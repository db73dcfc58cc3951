// How busy the whole machine's CPUs were over a stretch of the run, from /proc/stat: every
// process counts, the server's and the benchmark's alike. A contender that already keeps most
// cores busy alone cannot be multiplied by running it several times at once; this says by how much
// it could at most.

import { readFile } from 'node:fs/promises';

/** The CPUs' busy and total time so far (clock ticks, all CPUs together); null where /proc/stat is missing. */
export async function readCpuTimes() {
  try {
    const lines = (await readFile('/proc/stat', 'utf8')).split('\n');
    // cpu  user nice system idle iowait irq softirq steal ...; guest time is already in user.
    const [user, nice, system, idle, iowait, irq, softirq] = lines[0].trim().split(/\s+/).slice(1, 8).map(Number);
    // Steal, time the hypervisor gave to other machines, is neither ours to use nor idle: left out.
    const busy = user + nice + system + irq + softirq;
    return { busy, total: busy + idle + iowait, cpus: lines.filter((line) => /^cpu\d/.test(line)).length };
  } catch {
    return null;
  }
}

/** Cores busy on average between two readings (0 to the number of CPUs); null without both readings. */
export function coresBusy(before, after) {
  if (!before || !after || after.total <= before.total) return null;
  return ((after.busy - before.busy) / (after.total - before.total)) * after.cpus;
}

/** Runs `work` and tells, beside its result, how many cores were busy meanwhile. */
export async function measuringCores(work) {
  const before = await readCpuTimes();
  const result = await work();
  return { result, cores: coresBusy(before, await readCpuTimes()) };
}
