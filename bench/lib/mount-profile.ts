/**
 * CPU profiles of the ext4ts FUSE server for the mount benchmark (bench/mount.ts).
 *
 * The server's worker spends much of its sampled time inside native calls: `read`
 * (both the blocking read of /dev/fuse that waits for the next request and the
 * pread of the image) and `writeBuffers` (the reply writev). A V8 profile names these
 * without a source position, so they are told apart here by their JavaScript caller:
 * each native frame is renamed "read [via readAt]" after its nearest caller in our code
 * (Node's own JavaScript such as fs.readSync is skipped) and given that position,
 * then bench/lib/cpuprofile.ts summarizes the rewritten profile as usual (mapping
 * positions to the TypeScript sources).
 */
import * as fs from 'node:fs';
import { summarizeProfile, type ProfileSummary } from './cpuprofile.js';

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface Node {
  readonly id: number;
  callFrame: Frame;
  readonly children?: readonly number[];
}

/** Summarize `file` with native frames attributed to their JavaScript callers. */
export function summarizeServerProfile(file: string, projectRoot: string, top: number): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: Node[] };
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const original = new Map(profile.nodes.map((n) => [n.id, { ...n.callFrame }]));
  for (const n of profile.nodes) {
    const f = original.get(n.id);
    if (f === undefined || f.url !== '' || f.functionName === '' || f.functionName.startsWith('(')) continue;
    let at = parent.get(n.id);
    // Skip Node's own JavaScript (fs.readSync, fs.writevSync) up to our code.
    const internal = (id: number): boolean => {
      const url = original.get(id)?.url ?? '';
      return url === '' || url.startsWith('node:');
    };
    while (at !== undefined && internal(at)) at = parent.get(at);
    const caller = at === undefined ? undefined : original.get(at);
    if (caller === undefined) continue;
    n.callFrame = {
      functionName: `${f.functionName} [via ${caller.functionName === '' ? '(anonymous)' : caller.functionName}]`,
      url: caller.url,
      lineNumber: caller.lineNumber,
      columnNumber: caller.columnNumber,
    };
  }
  const out = file.replace(/\.cpuprofile$/, '.by-caller.json');
  fs.writeFileSync(out, JSON.stringify(profile));
  const summary = summarizeProfile(out, projectRoot, top);
  return { ...summary, file };
}
