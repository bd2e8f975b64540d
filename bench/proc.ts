/** What the bench reads from /proc: CPU time and memory of a process, and machine-wide CPU. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every common Linux). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** user+sys CPU seconds of a process, all its threads; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

export interface Memory {
  /** Resident set size now, bytes. */
  readonly rss: number;
  /** Peak resident set size since start or since resetPeak(), bytes. */
  readonly hwm: number;
}

export function memory(pid: number): Memory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : NaN;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Resets VmHWM to the current RSS (writing 5 to /proc/<pid>/clear_refs, Linux >= 4.0), so that
 * a later VmHWM is the peak of one phase rather than of the process's life. False when the
 * kernel or permissions refuse; callers then fall back to sampled peaks.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const m = memory(pid);
    return m !== undefined && m.hwm <= m.rss + 1024 * 1024;
  } catch {
    return false;
  }
}

/**
 * Tracks the peak RSS of a process during a phase: VmHWM after a reset when the kernel allows
 * it (exact), and a 20 ms RSS sampler as well (what a scraper would see; a fallback).
 */
export class PeakMeter {
  private sampled = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly exact: boolean;

  constructor(private readonly pid: number) {
    this.exact = resetPeak(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
  }

  private sample(): void {
    const m = memory(this.pid);
    if (m && m.rss > this.sampled) this.sampled = m.rss;
  }

  /** Stops sampling; the peak in bytes and how it was measured. */
  stop(): { peak: number; exact: boolean } {
    clearInterval(this.timer);
    this.sample();
    const m = memory(this.pid);
    if (this.exact && m && Number.isFinite(m.hwm)) return { peak: Math.max(m.hwm, this.sampled), exact: true };
    return { peak: this.sampled, exact: false };
  }
}

/**
 * Busy and total CPU seconds of the whole machine (all cores), from /proc/stat. `steal` (part of
 * busy) is time the hypervisor gave the host's other guests while this one wanted to run.
 */
export function machineCpu(): { busy: number; total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / ticksPerSecond(), total: (busy + idle + iowait) / ticksPerSecond(), steal: steal / ticksPerSecond() };
}

export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** CPU seconds of several processes at once; missing processes count 0. */
export function cpuOf(pids: readonly (number | undefined)[]): number {
  let s = 0;
  for (const p of pids) if (p !== undefined) s += cpuSeconds(p) ?? 0;
  return s;
}

/**
 * CPU used during a window: by the bench itself, by the process under test, by the daemon, and
 * by everything else on the machine (other engineers' tests: the noise of the run).
 */
export class CpuWindow {
  private readonly self0 = process.cpuUsage();
  private readonly proxy0: number;
  private readonly daemon0: number;
  private readonly machine0 = machineCpu();
  private readonly t0 = performance.now();

  constructor(private readonly proxyPid: number | undefined, private readonly daemonPids: readonly number[]) {
    this.proxy0 = proxyPid === undefined ? 0 : cpuSeconds(proxyPid) ?? 0;
    this.daemon0 = cpuOf(daemonPids);
  }

  end(): CpuUsed {
    const wall = (performance.now() - this.t0) / 1000;
    const self = process.cpuUsage(this.self0);
    const client = (self.user + self.system) / 1e6;
    const proxy = this.proxyPid === undefined ? 0 : (cpuSeconds(this.proxyPid) ?? 0) - this.proxy0;
    const daemon = cpuOf(this.daemonPids) - this.daemon0;
    const m = machineCpu();
    const busy = m.busy - this.machine0.busy;
    const steal = m.steal - this.machine0.steal;
    return { wall, client, proxy, daemon, other: Math.max(0, busy - steal - client - proxy - daemon), steal };
  }
}

export interface CpuUsed {
  /** Seconds of wall time. */
  readonly wall: number;
  /** CPU seconds of the bench process (the load generator). */
  readonly client: number;
  /** CPU seconds of the proxy under test (0 for the direct socket). */
  readonly proxy: number;
  /** CPU seconds of dockerd (+ containerd). */
  readonly daemon: number;
  /** CPU seconds of everything else on the machine. */
  readonly other: number;
  /** CPU seconds the hypervisor gave other guests of the host (noise from outside the machine). */
  readonly steal: number;
}

/**
 * Flushes dirty pages to disk before a transfer: the previous transfer wrote hundreds of MB into
 * a container file system, and the kernel's writeback of it (seen as kworker CPU and a direct
 * export at a third of its usual rate) would otherwise land on whichever target runs next.
 */
export function settleDisk(): void {
  try {
    execFileSync('sync', { timeout: 120_000, stdio: 'ignore' });
  } catch {
    /* informative only: the transfer is measured anyway */
  }
}
