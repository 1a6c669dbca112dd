/**
 * A stand-in for the FUSE worker: owns a cache, then blocks in synchronous reads
 * (of a FIFO instead of /dev/fuse) and does housekeeping between "requests" when
 * the wakeup flag says so. Used by test/housekeeping.test.ts.
 */
import { workerData, parentPort } from 'node:worker_threads';
import * as fs from 'node:fs';
import { MemoryChannel } from '../../src/io/memory-channel.js';
import { CachingChannel } from '../../src/cache/caching-channel.js';
import { Housekeeper, WakeupFlag } from '../../src/cache/housekeeper.js';

const data = workerData as { fifo: string; flag: SharedArrayBuffer; device: SharedArrayBuffer };
const dev = new MemoryChannel(new Uint8Array(data.device), { blockSize: 1024 });
let now = 0;
const cache = new CachingChannel(dev, { cacheSize: 32 * 1024, clock: () => now, flushInterval: 30 });
const housekeeper = new Housekeeper(cache, { clock: () => now });
const flag = new WakeupFlag(data.flag);
cache.write(7, 1, new Uint8Array(1024).fill(0x42));
now = 31_000; // the flush is due; nothing will run it unless housekeeping is woken
const fd = fs.openSync(data.fifo, 'r');
parentPort?.postMessage('blocked');
const buf = Buffer.alloc(1);
while (fs.readSync(fd, buf, 0, 1, null) === 1) {
  if (flag.take()) parentPort?.postMessage(housekeeper.run().flush);
}
fs.closeSync(fd);
