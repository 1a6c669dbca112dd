/** The CLI's commands; each is a thin layer over the library. */
import { Option, type Command } from 'commander';
import { addCommonOptions, type CommonOptions } from './options.js';
import { info, type InfoOptions } from './info.js';
import { ls, type LsOptions } from './ls.js';
import { stat, type StatOptions } from './stat.js';
import { cat } from './cat.js';
import { get, type GetOptions } from './get.js';
import { mount, umount, type MountCliOptions } from './mount.js';

const COMMON_HELP = `
--cache-size, --offset, --no-checksums and --stats work the same for every command.
Errors print one line, "ext4ts: WHAT: reason", and the exit status is 1.`;

function examples(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n${COMMON_HELP}`;
}

/** Exit status 1 when a command reports partial failure (it printed the reasons). */
function done(ok: boolean): void {
  if (!ok) process.exitCode = 1;
}

export function registerCommands(program: Command): void {
  addCommonOptions(
    program
      .command('info')
      .description('Show the superblock and features of an image, like `dumpe2fs -h`, and what ext4ts can do with it.')
      .argument('<image>', 'filesystem image or block device')
      .option('--json', 'print one JSON object instead of text'),
  )
    .addHelpText('after', examples(['ext4ts info disk.img', 'ext4ts info --json disk.img | jq .features', 'ext4ts info --offset 1M whole-disk.img']))
    .action(async (image: string, options: InfoOptions) => {
      await info(image, options);
    });

  addCommonOptions(
    program
      .command('ls')
      .description('List a directory of the image, like `ls -n` (numeric owner and group; names sorted bytewise, printed as raw bytes).')
      .argument('<image>', 'filesystem image or block device')
      .argument('[path]', 'path inside the image', '/')
      .option('-l, --long', 'long listing: mode, links, uid, gid, size (or major, minor), mtime, name, -> target')
      .option('-a, --all', 'include names starting with "." and the . and .. entries')
      .option('-A, --almost-all', 'include names starting with "." but not . and ..')
      .option('-R, --recursive', 'list subdirectories recursively, each under a "PATH:" header'),
  )
    .addHelpText('after', examples(['ext4ts ls disk.img', 'ext4ts ls -la disk.img /etc', 'ext4ts ls -lR disk.img /home']))
    .action(async (image: string, path: string, options: LsOptions) => {
      done(await ls(image, path, options));
    });

  addCommonOptions(
    program
      .command('stat')
      .description(
        'Show an inode: type, mode (octal and string), owner, size, links, blocks, flags, times with nanoseconds (atime, mtime, ctime, crtime), extents or block runs (or inline data), xattr names and sizes.',
      )
      .argument('<image>', 'filesystem image or block device')
      .argument('<path...>', 'paths inside the image')
      .option('-L, --dereference', 'follow a symlink given as PATH')
      .option('--json', 'print one JSON object per PATH, one per line'),
  )
    .addHelpText('after', examples(['ext4ts stat disk.img /etc/passwd', 'ext4ts stat --json disk.img /bin/sh', 'ext4ts stat -L disk.img /usr/bin/python3']))
    .action(async (image: string, paths: string[], options: StatOptions) => {
      done(await stat(image, paths, options));
    });

  addCommonOptions(
    program
      .command('cat')
      .description('Print the contents of files of the image on stdout, exact bytes, streamed in chunks.')
      .argument('<image>', 'filesystem image or block device')
      .argument('<path...>', 'files inside the image (symlinks are followed)'),
  )
    .addHelpText('after', examples(['ext4ts cat disk.img /etc/hostname', 'ext4ts cat disk.img /var/log/big.log | tail']))
    .action(async (image: string, paths: string[], options: CommonOptions) => {
      done(await cat(image, paths, options));
    });

  addCommonOptions(
    program
      .command('get')
      .description(
        'Copy a file or a whole tree out of the image, like `cp -a`: types, modes with setuid/setgid/sticky, owners (as root), atime and mtime to the nanosecond (directories too), symlinks, hard links, devices, fifos and sockets, user.* xattrs and ACLs. If DEST is an existing directory, PATH is copied into it (PATH "/" fills DEST itself).',
      )
      .argument('<image>', 'filesystem image or block device')
      .argument('<path>', 'file or directory inside the image (a symlink is copied as a symlink)')
      .argument('<dest>', 'where to put the copy')
      .option('-f, --force', 'replace existing non-directories at the destination')
      .option('--no-progress', 'no progress bar (it is only shown when stderr is a terminal)'),
  )
    .addHelpText(
      'after',
      examples(['ext4ts get disk.img / ./rootfs          # the whole filesystem into ./rootfs', 'ext4ts get disk.img /etc/passwd passwd.txt', 'ext4ts get disk.img /home /srv/backup   # makes /srv/backup/home']) +
        `
Special files and exact times use python3 (EXT4TS_PYTHON names another interpreter; empty disables it).
Without it: mknod/mkfifo make devices and fifos, setfattr --restore sets xattrs, times keep microseconds only.`,
    )
    .action(async (image: string, path: string, dest: string, options: GetOptions) => {
      done(await get(image, path, dest, options));
    });

  program
    .command('mount')
    .description(
      'Mount an image through FUSE, read-only, as root. Returns once the mount is live; the server runs in the background (-f keeps it in the foreground).',
    )
    .argument('<image>', 'filesystem image or block device')
    .argument('<mountpoint>', 'an existing directory')
    .option('-o, --options <list>', 'comma-separated mount options (may repeat)', (v: string, prev: string[] = []) => [...prev, v])
    .option('-f, --foreground', 'serve in this process until unmounted (Ctrl-C unmounts)')
    .addOption(new Option('--ready-fd <fd>').hideHelp())
    .addHelpText(
      'after',
      `
Mount options (-o, comma-separated, like mount(8) and fuse2fs):
  ro                      read-only (the default; read-write needs write support, not yet in ext4ts)
  allow_other             let other users use the mount
  default_permissions     the kernel checks permissions from mode bits and ACLs (on by default;
                          no_default_permissions turns it off)
  fakeroot                show every file as owned by the mounting user
  cache_size=SIZE         block cache budget (K/M/G suffixes; default min(32M, RAM/20))
  attr_timeout=SECONDS    how long the kernel may cache attributes (default 3600: the image is
  entry_timeout=SECONDS   ours alone while mounted, nothing else changes it)
  offset=BYTES            the filesystem starts this far into the image
  max_read=SIZE           largest read request (default 1M)
  flush_interval=SECONDS  periodic flush of dirty data (for read-write mounts)
  errors=continue|remount-ro|panic   what to do on corruption (read-only mounts continue)
  no_checksums            do not verify metadata checksums (recovery)
  debug                   trace every request on stderr (use with -f)

Examples:
  ext4ts mount disk.img /mnt/disk
  ext4ts mount -o allow_other,cache_size=256M disk.img /mnt/disk
  ext4ts mount -f -o debug disk.img /mnt/disk
  ext4ts umount /mnt/disk`,
    )
    .action(async (image: string, mountpoint: string, options: MountCliOptions) => {
      await mount(image, mountpoint, options);
    });

  program
    .command('umount')
    .description('Unmount an ext4ts mount and wait until its server has flushed everything and exited.')
    .argument('<mountpoint>', 'where the image is mounted')
    .option('-l, --lazy', 'detach now even if busy; the server exits when the last user is gone')
    .option('--timeout <seconds>', 'how long to wait for the server to exit', '60')
    .action(async (mountpoint: string, options: { lazy?: boolean; timeout?: string }) => {
      await umount(mountpoint, options);
    });
}
