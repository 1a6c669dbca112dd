/** `ext4ts cat IMAGE PATH...`: file contents, exact bytes, streamed in chunks. */
import { FsError } from '../errors.js';
import { about, Reporter } from './errors.js';
import { withImage } from './image.js';
import type { CommonOptions } from './options.js';
import { Output } from './output.js';

/** Bytes read per call: large enough for long device reads, small enough for memory. */
export const CHUNK = 1 << 20;

/** Returns false when a PATH failed (exit status 1). */
export async function cat(image: string, paths: readonly string[], options: CommonOptions): Promise<boolean> {
  return withImage(image, options, async (fs) => {
    const out = new Output();
    const reporter = new Reporter();
    for (const path of paths) {
      try {
        const ino = about(path, () => fs.resolve(path, true));
        const st = about(path, () => fs.getattr(ino));
        if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory', { path });
        if (st.kind !== 'file') throw new FsError('EINVAL', `not a regular file (${st.kind}); ext4ts cannot read devices, fifos or sockets from an image`, { path });
        for (let pos = 0; pos < st.size; ) {
          const data = about(path, () => fs.read(ino, pos, Math.min(CHUNK, st.size - pos)));
          if (data.length === 0) throw new FsError('EIO', `short read: ${pos} of ${st.size} bytes`, { path, inode: ino });
          await out.writeChunk(data);
          pos += data.length;
        }
      } catch (error) {
        reporter.error(path, error);
      }
    }
    await out.flush();
    return !reporter.failed;
  });
}
