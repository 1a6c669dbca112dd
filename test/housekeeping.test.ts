import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FaultChannel } from '../src/io/fault-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { Housekeeper, WakeupFlag } from '../src/cache/housekeeper.js';
import { PressureMonitor, parsePsiSomeTotal, systemPressureSources, type PressureSource } from '../src/cache/pressure.js';
import { FsError } from '../src/errors.js';
import { scratchDir } from './helpers/images.js';

const BS = 1024;

class FakeClock {
  now = 0;
  read = (): number => this.now;
}

describe('periodic flush', () => {
  it('flushes dirty data once the interval has passed since the last flush of any cause', () => {
    const clock = new FakeClock();
    const dev = new MemoryChannel(64 * BS, { blockSize: BS });
    const cache = new CachingChannel(dev, { cacheSize: 32 * BS, clock: clock.read, flushInterval: 30 });
    const hk = new Housekeeper(cache, { clock: clock.read });
    assert.equal(hk.run().flush, 'idle', 'nothing dirty');
    cache.write(3, 1, new Uint8Array(BS).fill(1));
    clock.now = 29_000;
    assert.equal(hk.run().flush, 'idle', 'not yet due');
    assert.equal(dev.contents[3 * BS], 0);
    clock.now = 30_000;
    assert.equal(hk.run().flush, 'flushed');
    assert.equal(dev.contents[3 * BS], 1);
    // An explicit flush resets the timer: the next periodic one waits a full interval.
    cache.write(4, 1, new Uint8Array(BS).fill(2));
    clock.now = 50_000;
    cache.flush();
    cache.write(5, 1, new Uint8Array(BS).fill(3));
    clock.now = 70_000;
    assert.equal(hk.run().flush, 'idle', 'a flush happened 20 s ago');
    clock.now = 80_000;
    assert.equal(hk.run().flush, 'flushed');
    assert.equal(dev.contents[5 * BS], 3);
  });

  it('is off with an interval of 0, and reports a failing flush without retrying at every tick', () => {
    const clock = new FakeClock();
    const dev = new FaultChannel(new MemoryChannel(64 * BS, { blockSize: BS }));
    const errors: number[] = [];
    const cache = new CachingChannel(dev, { cacheSize: 32 * BS, clock: clock.read, flushInterval: 0, onWriteError: (_e, b) => errors.push(b) });
    cache.write(1, 1, new Uint8Array(BS).fill(1));
    clock.now = 1e9;
    assert.equal(cache.flushIfDue(), 'idle');
    cache.flushIntervalSeconds = 10;
    dev.fail({ op: 'write' });
    const r = cache.flushIfDue(clock.now);
    assert.ok(r instanceof FsError && r.code === 'EIO');
    assert.deepEqual(errors, [1]);
    assert.equal(cache.flushIfDue(clock.now + 1000), 'idle', 'no retry storm');
    dev.heal();
    assert.equal(cache.flushIfDue(clock.now + 10_000), 'flushed');
    assert.equal(cache.dirtyCount, 0);
  });
});

describe('memory pressure', () => {
  it('parses PSI files', () => {
    assert.equal(parsePsiSomeTotal('some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=99\n'), 12345);
    assert.equal(parsePsiSomeTotal('garbage'), undefined);
    for (const s of systemPressureSources()) assert.equal(typeof s.sample(), 'number', s.name);
  });

  it('shrinks the cache under pressure (x0.9 a step) and grows it back after a quiet spell', () => {
    const dev = new MemoryChannel(4096 * BS, { blockSize: BS });
    const cache = new CachingChannel(dev, { cacheSize: 1000 * BS });
    for (let b = 0; b < 1000; b++) cache.write(b, 1, new Uint8Array(BS).fill(b & 0xff));
    assert.equal(cache.stats().buffers, 1000);
    let stalled = 0;
    const source: PressureSource = { name: 'fake', sample: () => stalled };
    const monitor = new PressureMonitor(cache, [source], { relaxMs: 10_000 });
    assert.equal(monitor.check(0), 'none');
    stalled += 300_000; // 300 ms stalled in a 2 s window: 15% > 10%
    assert.equal(monitor.check(2000), 'shrink');
    assert.equal(cache.capacityBlocks, 900);
    assert.equal(cache.stats().buffers, 900);
    stalled += 300_000;
    monitor.check(4000);
    assert.equal(cache.capacityBlocks, 810);
    for (let b = 0; b < 1000; b++) assert.equal(dev.contents[b * BS], b & 0xff, 'shrinking wrote dirty buffers back');
    stalled += 10_000; // 10 ms in 2 s: no pressure
    assert.equal(monitor.check(6000), 'none', 'quiet, but not long enough to grow');
    assert.equal(monitor.check(14_000), 'grow');
    assert.equal(cache.capacityBlocks, 891);
    for (let t = 16_000; t < 60_000; t += 2000) monitor.check(t);
    assert.equal(cache.capacityBlocks, 1000, 'back to the configured budget, not beyond');
  });
});

describe('housekeeping of a blocked owner', () => {
  it('a worker blocked in a synchronous read is woken and runs its periodic flush', async () => {
    const fifo = join(scratchDir(), 'wake.fifo');
    execFileSync('mkfifo', [fifo]);
    const flag = new WakeupFlag();
    const deviceBytes = new SharedArrayBuffer(64 * BS);
    // Workers do not inherit tsx's loader: register it inside the worker, then load the script.
    const script = new URL('./helpers/blocked-owner-worker.ts', import.meta.url).href;
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const worker = new Worker(`import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); })`, {
      eval: true,
      workerData: { fifo, flag: flag.buffer, device: deviceBytes },
    });
    const messages: string[] = [];
    let failure: unknown;
    worker.on('error', (e) => (failure = e));
    const waitFor = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 20_000;
        const check = () => {
          if (failure !== undefined) reject(failure instanceof Error ? failure : new Error('worker failed'));
          else if (messages.length >= n) resolve();
          else if (Date.now() > deadline) reject(new Error(`worker sent ${messages.length} of ${n} messages`));
          else setTimeout(check, 10);
        };
        check();
      });
    worker.on('message', (m: string) => messages.push(m));
    // O_RDWR on a FIFO never blocks (Linux), so the main thread cannot hang here.
    const writer = fs.openSync(fifo, fs.constants.O_RDWR);
    await waitFor(1);
    assert.equal(new Uint8Array(deviceBytes)[7 * BS], 0, 'dirty data not yet on the device');
    // The owner of the timer: set the flag, then poke the blocked thread awake.
    flag.request();
    fs.writeSync(writer, 'x');
    await waitFor(2);
    assert.equal(messages[1], 'flushed');
    assert.equal(new Uint8Array(deviceBytes)[7 * BS], 0x42, 'the periodic flush reached the device');
    fs.closeSync(writer);
    await worker.terminate();
  });
});
