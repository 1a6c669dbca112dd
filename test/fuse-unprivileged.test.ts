/**
 * Mounting as an ordinary user: fusermount3 mounts and passes /dev/fuse back over a
 * socket, which the native addon receives. /dev/fuse is 0600 on this machine, so the
 * test opens it to others for its duration (and restores the mode), then mounts,
 * reads and unmounts as `nobody`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { makeImage, scratchDir } from './helpers/images.js';

const CLI = join(process.cwd(), 'src/cli/main.ts');
const asNobody = (args: string[], timeout = 60_000) =>
  spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env', `HOME=${scratchDir()}`, ...args], { encoding: 'utf8', timeout });

describe('unprivileged mount through fusermount3', () => {
  let dir = '';
  let mnt = '';
  let image = '';
  let oldMode = 0;
  const content = Buffer.alloc(300_000);
  before(() => {
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    const src = makeImage({
      name: 'unpriv',
      size: '16M',
      mkfsArgs: ['-t', 'ext4'],
      populate: (d) => {
        fs.writeFileSync(join(d, 'data.bin'), content);
        fs.mkdirSync(join(d, 'sub'));
        fs.writeFileSync(join(d, 'sub/note'), 'user mount\n');
      },
    });
    dir = fs.mkdtempSync(join(scratchDir(), 'unpriv-'));
    image = join(dir, 'img');
    mnt = join(dir, 'mnt');
    fs.copyFileSync(src, image);
    fs.mkdirSync(mnt);
    fs.chmodSync(scratchDir(), 0o755);
    for (const p of [dir, image, mnt]) fs.chownSync(p, 65534, 65534);
    oldMode = fs.statSync('/dev/fuse').mode & 0o777;
    fs.chmodSync('/dev/fuse', 0o666);
  });
  after(() => {
    fs.chmodSync('/dev/fuse', oldMode);
    spawnSync('fusermount3', ['-u', '-z', mnt]);
  });

  it('mounts, serves and unmounts as nobody', () => {
    const m = asNobody([process.execPath, '--import', 'tsx', CLI, 'mount', image, mnt]);
    assert.equal(m.status, 0, m.stderr);
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${mnt} `));
    assert.ok(line !== undefined && line.includes('fuse.ext4ts') && line.includes('user_id=65534'), line);
    assert.match(line, /\bdefault_permissions\b/, 'the kernel checks permissions: the server does not');
    const cat = asNobody(['cat', join(mnt, 'sub/note')]);
    assert.equal(cat.stdout, 'user mount\n', cat.stderr);
    const sum = asNobody(['sha256sum', join(mnt, 'data.bin')]);
    assert.equal(sum.stdout.split(' ')[0], createHash('sha256').update(content).digest('hex'));
    const u = asNobody([process.execPath, '--import', 'tsx', CLI, 'umount', mnt]);
    assert.equal(u.status, 0, u.stderr);
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `), 'unmounted');
  });
});
