/**
 * Request and response bodies are streamed, never buffered: a 1 GB `GET /containers/{id}/export`
 * and a 100 MB `PUT /containers/{id}/archive` pass through the real `dockward serve` while its
 * resident memory (VmRSS of the gateway process, sampled every 100 ms) stays flat. Measured, not
 * timed: nothing here depends on how fast the machine is.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tarHeader } from '../../bench/docker.js';
import {
  describeE2E,
  dockerDirect,
  dockerSock,
  labelArgs,
  startGateway,
  TEST_IMAGE,
  uniqueName,
  type Gateway,
} from './harness.js';

const MiB = 1024 * 1024;
/** How far above its idle baseline the gateway's RSS may go while a stream passes through. */
const RSS_BUDGET = 100 * MiB;
const BIG_FILE_MIB = 1024;
const UPLOAD_BYTES = 100 * 1000 * 1000;

const POLICY = `
rules:
  - name: movers-move-files
    effect: allow
    subjects: ["group:movers"]
    actions: [system.ping.head, system.ping, container.export, container.archive.put, container.archive.info]
`;
const MOVER = { sub: 'max', groups: ['movers'] };

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Samples the process's RSS every 100 ms until stop(); returns the peak. */
function rssSampler(pid: number): { stop(): { peak: number; samples: number } } {
  let peak = rssBytes(pid);
  let samples = 1;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
      samples += 1;
    } catch {
      /* the process is gone: the test fails on its own */
    }
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssBytes(pid));
      return { peak, samples: samples + 1 };
    },
  };
}

interface Download {
  status: number;
  bytes: number;
  /** The first 512 bytes, to see what came. */
  head: Buffer;
}

/**
 * GETs `path` through the gateway, counting and discarding the body. `pauseAfter` bytes in, the
 * reader stops reading for `pauseMs`: a gateway that ignored backpressure would buffer what the
 * daemon keeps sending meanwhile.
 */
function download(gw: Gateway, path: string, opts: { pauseAfter?: number; pauseMs?: number } = {}): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port: gw.port, path, agent: false, headers: { Authorization: `Bearer ${gw.token(MOVER.sub, MOVER.groups)}` } },
      (res) => {
        let bytes = 0;
        let paused = false;
        const headChunks: Buffer[] = [];
        let headLen = 0;
        res.on('data', (chunk: Buffer) => {
          if (headLen < 512) {
            headChunks.push(chunk.subarray(0, 512 - headLen));
            headLen += Math.min(chunk.length, 512 - headLen);
          }
          bytes += chunk.length;
          if (!paused && opts.pauseAfter !== undefined && bytes >= opts.pauseAfter) {
            paused = true;
            res.pause();
            setTimeout(() => res.resume(), opts.pauseMs ?? 3_000);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, head: Buffer.concat(headChunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

/** A tar holding one file of `size` bytes, produced on demand (never in memory as a whole). */
function tarStream(name: string, size: number): Readable {
  const chunk = Buffer.alloc(MiB, 0x5a);
  return Readable.from(
    (function* () {
      yield tarHeader(name, size);
      let left = size;
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        yield n === chunk.length ? chunk : chunk.subarray(0, n);
        left -= n;
      }
      yield Buffer.alloc((512 - (size % 512)) % 512 + 1024, 0);
    })(),
    { objectMode: false },
  );
}

function upload(gw: Gateway, path: string, body: Readable): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: gw.port,
        path,
        method: 'PUT',
        agent: false,
        headers: { Authorization: `Bearer ${gw.token(MOVER.sub, MOVER.groups)}`, 'Content-Type': 'application/x-tar' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    body.pipe(req);
  });
}

/** The daemon's stat of a path in a container (HEAD .../archive straight at the socket). */
function statInContainer(container: string, file: string): Promise<{ name: string; size: number } | null> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: dockerSock(), method: 'HEAD', path: `/v1.41/containers/${container}/archive?path=${encodeURIComponent(file)}` },
      (res) => {
        res.resume();
        const stat = res.headers['x-docker-container-path-stat'];
        if (res.statusCode !== 200 || typeof stat !== 'string') return resolve(null);
        resolve(JSON.parse(Buffer.from(stat, 'base64').toString('utf8')) as { name: string; size: number });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describeE2E('streamed bodies keep the gateway\'s memory flat', () => {
  let gw: Gateway;
  const big = uniqueName('big');
  const small = uniqueName('small');
  let baseline = 0;

  beforeAll(async () => {
    gw = await startGateway({ policyYaml: POLICY });
    const [made, smallMade] = await Promise.all([
      // Zeros are as good as random data here: the export is an uncompressed tar, only its size matters.
      dockerDirect(['run', '--name', big, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'dd', 'if=/dev/zero', 'of=/big', 'bs=1M', `count=${BIG_FILE_MIB}`], { timeoutMs: 180_000 }),
      dockerDirect(['create', '--name', small, '--network', 'none', ...labelArgs(), TEST_IMAGE, 'true']),
    ]);
    expect(made.code, made.stderr).toBe(0);
    expect(smallMade.code, smallMade.stderr).toBe(0);

    // Warm up both paths (module loading, JIT, socket pools), then take the idle baseline.
    const warm = await download(gw, `/v1.41/containers/${small}/export`);
    expect(warm.status).toBe(200);
    const warmUp = await upload(gw, `/v1.41/containers/${small}/archive?path=/tmp`, tarStream('warm.bin', 4 * MiB));
    expect(warmUp.status, warmUp.text).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    baseline = rssBytes(gw.pid);
  }, 300_000);

  afterAll(async () => {
    // 1 GB of disk: gone now, not at the end of the suite.
    await dockerDirect(['rm', '--force', '--volumes', big], { timeoutMs: 120_000 });
  });

  it('a 1 GB GET /containers/{id}/export streams through with the RSS within 100 MiB of idle, also while the reader pauses', async () => {
    const sampler = rssSampler(gw.pid);
    const r = await download(gw, `/v1.41/containers/${big}/export`, { pauseAfter: 200 * MiB, pauseMs: 3_000 });
    const { peak, samples } = sampler.stop();

    expect(r.status).toBe(200);
    expect(r.bytes).toBeGreaterThanOrEqual(1e9);
    expect(r.bytes).toBeGreaterThanOrEqual(BIG_FILE_MIB * MiB);
    // A tar: the first header block ends with the ustar magic.
    expect(r.head.subarray(257, 262).toString('ascii')).toBe('ustar');
    expect(samples).toBeGreaterThan(10);
    const growth = peak - baseline;
    console.info(`[rss] baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB over ${samples} samples`);
    expect(growth, `baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB over ${samples} samples`).toBeLessThan(RSS_BUDGET);
  }, 300_000);

  it('a 100 MB PUT /containers/{id}/archive streams in with the RSS within 100 MiB of idle, and the file arrives whole', async () => {
    const sampler = rssSampler(gw.pid);
    const r = await upload(gw, `/v1.41/containers/${small}/archive?path=/tmp`, tarStream('upload.bin', UPLOAD_BYTES));
    const { peak, samples } = sampler.stop();

    expect(r.status, r.text).toBe(200);
    expect(await statInContainer(small, '/tmp/upload.bin')).toMatchObject({ name: 'upload.bin', size: UPLOAD_BYTES });
    const growth = peak - baseline;
    console.info(`[rss] baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB over ${samples} samples`);
    expect(growth, `baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB over ${samples} samples`).toBeLessThan(RSS_BUDGET);
  }, 300_000);
});
