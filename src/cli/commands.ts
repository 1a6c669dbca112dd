/** The CLI's commands; each is a thin layer over the library. */
import { Option, type Command } from 'commander';
import { addCommonOptions, parseOctalMode, type CommonOptions } from './options.js';
import type { InfoOptions } from './info.js';
import type { LsOptions } from './ls.js';
import type { StatOptions } from './stat.js';
import type { GetOptions } from './get.js';
import type { PutOptions } from './put.js';
import type { ChownOptions, LnOptions, MkdirOptions, MvOptions, RmOptions, TruncateOptions } from './edit.js';
import type { MountCliOptions } from './mount.js';

// Each command's module is loaded when that command runs: start-up (paid by every
// `ext4ts ls`) then parses only commander, this file and the options, not the FUSE
// server, the writers and the progress bar of commands not asked for.

const COMMON_HELP = `
--cache-size, --offset, --no-checksums, --no-journal and --stats work the same for every command.
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
      await (await import('./info.js')).info(image, options);
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
      done(await (await import('./ls.js')).ls(image, path, options));
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
      done(await (await import('./stat.js')).stat(image, paths, options));
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
      done(await (await import('./cat.js')).cat(image, paths, options));
    });

  addCommonOptions(
    program
      .command('get')
      .description(
        'Copy a file or a whole tree out of the image, like `cp -a`: types, modes with setuid/setgid/sticky, owners (as root), atime and mtime to the nanosecond (directories too), symlinks, hard links, devices, fifos and sockets, user.* xattrs and ACLs. If DEST is an existing directory, PATH is copied into it (PATH "/" fills DEST itself). When DEST fills up (ENOSPC, EDQUOT) or is read-only, the copy stops there, and a file whose data could not all be written is removed, not left half-written.',
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
      done(await (await import('./get.js')).get(image, path, dest, options));
    });

  registerWriteCommands(program);

  program
    .command('mount')
    .description(
      'Mount an image through FUSE (read-write unless -o ro), as root or, with fusermount3, as a user. Returns once the mount is live; the server runs in the background (-f keeps it in the foreground). `ext4ts umount` writes everything back and marks the filesystem clean.',
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
  rw                      read-write (the default when the image can be written; a filesystem with
                          features ext4ts cannot write, or errors recorded, is mounted read-only
                          with a warning)
  ro                      read-only: the image is never changed
  relatime                reads update atime when it is older than mtime/ctime or a day old (default)
  strictatime             every read (that reaches the server) updates atime
  noatime                 reads never update atime
  lazytime                atime updates are written with the next other write-back or at unmount
  allow_other             let other users use the mount
  default_permissions     the kernel checks permissions from mode bits and POSIX ACLs (always on:
                          the server checks none itself, so no_default_permissions is refused)
  fakeroot                show every file as owned by the mounting user
  cache_size=SIZE         block cache budget (K/M/G suffixes; default min(32M, RAM/20))
  attr_timeout=SECONDS    how long the kernel may cache attributes (default 3600: the image is
  entry_timeout=SECONDS   ours alone while mounted, nothing else changes it)
  offset=BYTES            the filesystem starts this far into the image
  max_read=SIZE           largest read request (default 1M)
  flush_interval=SECONDS  read-write: changes become durable (written and fsync'ed) at most this
                          long after they were made (default 30; 0: only at fsync/sync/unmount).
                          close(2) writes a file's changes back to the image, fsync(2) makes
                          them durable
  writeback_cache         read-write: the kernel's writeback cache gathers small writes into large
                          ones (on by default); no_writeback_cache turns it off, which saves the
                          kernel's SETATTR after each close of a written file and each unlink
                          (faster for many small files written in one write each)
  spin=MICROSECONDS       how long the server looks for the next request before it sleeps
                          (default 100; 0: sleep at once). Clients send their next request
                          microseconds after a reply; waking a sleeping server costs more,
                          most on virtual machines (2x on creating many small files here)
  errors=continue|remount-ro|panic   what to do on corruption (read-only mounts continue)
  no_checksums            do not verify metadata checksums (recovery)
  noload                  do not replay a journal that needs recovery (in memory) before serving
                          the image: it is read as it is on the device
  debug                   trace every request on stderr (use with -f)

Examples:
  ext4ts mount disk.img /mnt/disk
  ext4ts mount -o ro,noatime disk.img /mnt/disk
  ext4ts mount -o allow_other,cache_size=256M disk.img /mnt/disk
  ext4ts mount -f -o debug disk.img /mnt/disk
  ext4ts umount /mnt/disk`,
    )
    .action(async (image: string, mountpoint: string, options: MountCliOptions) => {
      await (await import('./mount.js')).mount(image, mountpoint, options);
    });

  program
    .command('umount')
    .description('Unmount an ext4ts mount and wait until its server has flushed everything and exited. A mount still busy after a second (files open on it, a shell inside it) is reported (EBUSY); --lazy detaches it anyway.')
    .argument('<mountpoint>', 'where the image is mounted')
    .option('-l, --lazy', 'detach now even if busy; the server exits when the last user is gone')
    .option('--timeout <seconds>', 'how long to wait for the server to exit', '60')
    .action(async (mountpoint: string, options: { lazy?: boolean; timeout?: string }) => {
      await (await import('./mount.js')).umount(mountpoint, options);
    });
}

const WRITE_HELP = `
The image is opened read-write and closed cleanly (written back, marked clean) even when
a PATH fails; each failure prints one line and the exit status is then 1.`;

/** put, mkdir, rm, mv, ln, chmod, chown, truncate: the commands that change the image. */
function registerWriteCommands(program: Command): void {
  addCommonOptions(
    program
      .command('put')
      .usage('[options] <image> <src...> <dest>')
      .description(
        'Copy host files or whole trees into the image, like `cp -a`: types (files, directories, symlinks, hard links, devices, fifos, sockets), modes with setuid/setgid/sticky, numeric owners, atime and mtime to the nanosecond (directories too), xattrs (user.*, trusted.*, security.*) and POSIX ACLs; all-zero blocks are left as holes. If DEST is a directory of the image, each SRC goes inside it (a SRC ending in "/." fills DEST itself); otherwise, with one SRC, DEST is its new name. Existing files are replaced, existing directories merged into. Out of space (or on an I/O error) the copy stops, and the file it could not finish is removed, not left half-written.',
      )
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<paths...>', 'SRC... DEST: host files or directories, then the destination inside the image')
      .option('--no-progress', 'no progress bar (it is only shown when stderr is a terminal)'),
  )
    .addHelpText(
      'after',
      examples(['ext4ts put disk.img ./rootfs/. /          # fill the whole filesystem from ./rootfs', 'ext4ts put disk.img notes.txt /home/me/notes.txt', 'ext4ts put disk.img /etc /var/www /srv      # makes /srv/etc and /srv/www']) +
        WRITE_HELP +
        '\nHost xattrs and ACLs are read with getfattr (package attr); without it they are not copied.',
    )
    .action(async (image: string, paths: string[], options: PutOptions, cmd: Command) => {
      if (paths.length < 2) cmd.error('put: missing DEST after SRC');
      done(await (await import('./put.js')).put(image, paths, options));
    });

  addCommonOptions(
    program
      .command('mkdir')
      .description('Make directories in the image, like mkdir(1); owned by you, mode 0777 minus the umask unless -m.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<path...>', 'directories to make')
      .option('-p, --parents', 'make missing parents too; no error if a directory exists')
      .option('-m, --mode <mode>', 'octal mode of the new directories (not of the parents -p makes)', parseOctalMode),
  )
    .addHelpText('after', examples(['ext4ts mkdir disk.img /srv', 'ext4ts mkdir -p -m 700 disk.img /home/me/.ssh']) + WRITE_HELP)
    .action(async (image: string, paths: string[], options: MkdirOptions) => {
      done(await (await import('./edit.js')).mkdir(image, paths, options));
    });

  addCommonOptions(
    program
      .command('rm')
      .description('Remove files, symlinks and (with -r) directory trees from the image, like rm(1). A symlink is removed, never followed.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<path...>', 'paths to remove')
      .option('-r, --recursive', 'remove directories and their contents')
      .option('-f, --force', 'no error for a missing PATH'),
  )
    .addHelpText('after', examples(['ext4ts rm disk.img /tmp/junk.txt', 'ext4ts rm -rf disk.img /var/cache/apt']) + WRITE_HELP)
    .action(async (image: string, paths: string[], options: RmOptions) => {
      done(await (await import('./edit.js')).rm(image, paths, options));
    });

  addCommonOptions(
    program
      .command('mv')
      .usage('[options] <image> <src...> <dest>')
      .description('Rename or move within the image, like mv(1): if DEST is a directory, each SRC moves inside it; otherwise SRC takes the name DEST, replacing a file there (or an empty directory, for a directory).')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<paths...>', 'SRC... DEST, paths inside the image')
      .option('-n, --no-clobber', 'never replace an existing DEST (EEXIST instead)'),
  )
    .addHelpText('after', examples(['ext4ts mv disk.img /etc/motd /etc/motd.old', 'ext4ts mv disk.img /a.txt /b.txt /home/me']) + WRITE_HELP)
    .action(async (image: string, paths: string[], options: MvOptions, cmd: Command) => {
      if (paths.length < 2) cmd.error('mv: missing DEST after SRC');
      done(await (await import('./edit.js')).mv(image, paths, options));
    });

  addCommonOptions(
    program
      .command('ln')
      .description('Make a hard link (or with -s a symbolic link) in the image, like ln(1). If LINKNAME is a directory, the link is made inside it under the name of TARGET.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<target>', 'existing path (hard link) or the text of the symlink (-s; not checked)')
      .argument('<linkname>', 'the new name')
      .option('-s, --symbolic', 'make a symbolic link')
      .option('-f, --force', 'replace an existing LINKNAME (not a directory)'),
  )
    .addHelpText('after', examples(['ext4ts ln disk.img /bin/busybox /bin/sh', 'ext4ts ln -s ../lib/libfoo.so.1 disk.img /usr/lib/libfoo.so']) + WRITE_HELP)
    .action(async (image: string, target: string, linkName: string, options: LnOptions) => {
      done(await (await import('./edit.js')).ln(image, target, linkName, options));
    });

  addCommonOptions(
    program
      .command('chmod')
      .description('Change permission bits in the image, like chmod(1): octal (755, 4755, 1777) or symbolic (u+x, go-w, a=rX, u+s). A symlink PATH is followed.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<mode>', 'octal or symbolic mode (one starting with "-" needs "--" before IMAGE)')
      .argument('<path...>', 'paths inside the image'),
  )
    .addHelpText('after', examples(['ext4ts chmod disk.img 4755 /usr/bin/su', 'ext4ts chmod disk.img go-rwx /home/me', 'ext4ts chmod -- disk.img -x /etc/init.d/foo']) + WRITE_HELP)
    .action(async (image: string, mode: string, paths: string[], options: CommonOptions) => {
      done(await (await import('./edit.js')).chmod(image, mode, paths, options));
    });

  addCommonOptions(
    program
      .command('chown')
      .description('Change owner and/or group in the image, numeric ids: UID, UID:GID or :GID (like chown(1); a symlink PATH is followed unless --no-dereference). A new owner clears setuid (and setgid on group-executable files), as chown(2) does.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<owner>', 'UID[:GID] or :GID, numeric')
      .argument('<path...>', 'paths inside the image')
      .option('--no-dereference', 'change a symlink itself, not what it points to'),
  )
    .addHelpText('after', examples(['ext4ts chown disk.img 1000:1000 /home/me', 'ext4ts chown disk.img :33 /var/www', 'ext4ts chown --no-dereference disk.img 0:0 /usr/lib/link']) + WRITE_HELP)
    .action(async (image: string, owner: string, paths: string[], options: ChownOptions) => {
      done(await (await import('./edit.js')).chown(image, owner, paths, options));
    });

  addCommonOptions(
    program
      .command('truncate')
      .description('Set the size of files in the image, like truncate(1): growing adds a hole, shrinking frees the blocks. A missing PATH is made (an empty file owned by you) unless -c.')
      .argument('<image>', 'filesystem image or block device (written)')
      .argument('<path...>', 'files inside the image')
      .requiredOption('-s, --size <size>', 'new size: bytes or K/M/G/T; +SIZE/-SIZE grow or shrink by, <SIZE at most, >SIZE at least')
      .option('-c, --no-create', 'do not make missing files'),
  )
    .addHelpText('after', examples(['ext4ts truncate -s 0 disk.img /var/log/syslog', 'ext4ts truncate -s +1G disk.img /swapfile']) + WRITE_HELP)
    .action(async (image: string, paths: string[], options: TruncateOptions) => {
      done(await (await import('./edit.js')).truncate(image, paths, options));
    });
}
