/** `ext4ts info IMAGE`: the superblock, like `dumpe2fs -h`, and what ext4ts can do with it. */
import { FsError } from '../errors.js';
import { FileChannel } from '../io/file-channel.js';
import { decodeSuperblock, formatUuid, SB, SUPERBLOCK_OFFSET, type Superblock } from '../ondisk/superblock.js';
import { assessFeatures, featureNames, INCOMPAT_CASEFOLD, INCOMPAT_CSUM_SEED, INCOMPAT_RECOVER, type FeatureCheck } from '../ondisk/features.js';
import { openImage, printStats } from './image.js';
import type { CommonOptions } from './options.js';
import { ctimeString, hex } from './format.js';
import { Output } from './output.js';
import { Failure } from './errors.js';

export interface InfoOptions extends CommonOptions {
  readonly json?: boolean;
}

const FS_FLAGS = [
  [0x1, 'signed_directory_hash'],
  [0x2, 'unsigned_directory_hash'],
  [0x4, 'test_filesystem'],
] as const;

/** e2p's default mount option names (lib/e2p/mntopts.c), bit order. */
const MOUNT_OPTS = [
  [0x0001, 'debug'],
  [0x0002, 'bsdgroups'],
  [0x0004, 'user_xattr'],
  [0x0008, 'acl'],
  [0x0010, 'uid16'],
  [0x0100, 'nobarrier'],
  [0x0200, 'block_validity'],
  [0x0400, 'discard'],
  [0x0800, 'nodelalloc'],
] as const;
const JOURNAL_MODES = ['', 'journal_data', 'journal_data_ordered', 'journal_data_writeback'];

const ERRORS = ['Unknown (ignored)', 'Continue', 'Remount read-only', 'Panic'];
const OS_NAMES = ['Linux', 'Hurd', 'Masix', 'FreeBSD', 'Lites'];
const HASH_NAMES = ['legacy', 'half_md4', 'tea', 'legacy_unsigned', 'half_md4_unsigned', 'tea_unsigned', 'siphash'];

/** Like e2p's print_mntopts: the journal mode first, then the other bits in order. */
function mountOptions(value: number): string[] {
  const names: string[] = [];
  const mode = (value >>> 5) & 3;
  if (mode !== 0) names.push(JOURNAL_MODES[mode] ?? '');
  for (let bit = 0; bit < 32; bit++) {
    const mask = 2 ** bit;
    if (mask === 0x20 || mask === 0x40 || Math.floor(value / mask) % 2 === 0) continue;
    names.push(MOUNT_OPTS.find(([m]) => m === mask)?.[1] ?? `MNTOPT_${bit}`);
  }
  return names;
}

function stateWords(state: number): string {
  let s = (state & 1) !== 0 ? 'clean' : 'not clean';
  if ((state & 2) !== 0) s += ' with errors';
  if ((state & 4) !== 0) s += ' orphans being recovered';
  return s;
}

/** The superblock as ordered fields: [dumpe2fs label, text value, JSON key, JSON value]. */
type Field = readonly [label: string, text: string, key: string, value: unknown];

function fields(sb: Superblock, check: FeatureCheck): Field[] {
  const out: Field[] = [];
  const add = (label: string, text: string | number, key: string, value: unknown = text): void => {
    out.push([label, String(text), key, value]);
  };
  const time = (label: string, seconds: number, key: string, zero = 'n/a'): void => {
    add(label, seconds === 0 ? zero : ctimeString(seconds), key, seconds === 0 ? null : new Date(seconds * 1000).toISOString());
  };
  const features = featureNames(sb);
  const flags = FS_FLAGS.filter(([bit]) => (sb.flags & bit) !== 0).map(([, n]) => n);
  const mntopts = mountOptions(sb.defaultMountOpts);
  const uuidZero = sb.uuid.every((b) => b === 0);
  add('Filesystem volume name', sb.volumeName === '' ? '<none>' : sb.volumeName, 'volumeName', sb.volumeName);
  add('Last mounted on', sb.lastMounted === '' ? '<not available>' : sb.lastMounted, 'lastMounted', sb.lastMounted);
  add('Filesystem UUID', uuidZero ? '<none>' : formatUuid(sb.uuid), 'uuid', formatUuid(sb.uuid));
  add('Filesystem magic number', `0x${sb.magic.toString(16).toUpperCase()}`, 'magic', sb.magic);
  add('Filesystem revision #', `${sb.revLevel} (${sb.revLevel === 0 ? 'original' : 'dynamic'})`, 'revision', sb.revLevel);
  add('Filesystem features', features.length === 0 ? '(none)' : features.join(' '), 'features', features);
  add('Filesystem flags', flags.join(' '), 'flags', flags);
  add('Default mount options', mntopts.length === 0 ? '(none)' : mntopts.join(' '), 'defaultMountOptions', mntopts);
  add('Filesystem state', stateWords(sb.state), 'state', stateWords(sb.state));
  add('Errors behavior', ERRORS[sb.errors] ?? 'Unknown (continue)', 'errorsBehavior', ERRORS[sb.errors] ?? sb.errors);
  add('Filesystem OS type', OS_NAMES[sb.creatorOs] ?? '(unknown os)', 'osType', OS_NAMES[sb.creatorOs] ?? sb.creatorOs);
  add('Inode count', sb.inodesCount, 'inodeCount', sb.inodesCount);
  add('Block count', sb.blocksCount, 'blockCount', sb.blocksCount);
  add('Reserved block count', sb.rBlocksCount, 'reservedBlockCount', sb.rBlocksCount);
  if (sb.overheadClusters !== 0) add('Overhead clusters', sb.overheadClusters, 'overheadClusters', sb.overheadClusters);
  add('Free blocks', sb.freeBlocksCount, 'freeBlocks', sb.freeBlocksCount);
  add('Free inodes', sb.freeInodesCount, 'freeInodes', sb.freeInodesCount);
  add('First block', sb.firstDataBlock, 'firstBlock', sb.firstDataBlock);
  add('Block size', sb.blockSize, 'blockSize', sb.blockSize);
  add(sb.hasBigalloc ? 'Cluster size' : 'Fragment size', sb.clusterSize, 'clusterSize', sb.clusterSize);
  if (sb.has64bit) add('Group descriptor size', sb.descSizeField, 'groupDescriptorSize', sb.descSizeField);
  if (sb.reservedGdtBlocks !== 0) add('Reserved GDT blocks', sb.reservedGdtBlocks, 'reservedGdtBlocks', sb.reservedGdtBlocks);
  add('Block groups', sb.groupCount, 'groups', sb.groupCount);
  add('Blocks per group', sb.blocksPerGroup, 'blocksPerGroup', sb.blocksPerGroup);
  add(sb.hasBigalloc ? 'Clusters per group' : 'Fragments per group', sb.clustersPerGroup, 'clustersPerGroup', sb.clustersPerGroup);
  add('Inodes per group', sb.inodesPerGroup, 'inodesPerGroup', sb.inodesPerGroup);
  add('Inode blocks per group', sb.inodeTableBlocks, 'inodeBlocksPerGroup', sb.inodeTableBlocks);
  if (sb.hasFlexBg) add('Flex block group size', sb.groupsPerFlex, 'flexGroupSize', sb.groupsPerFlex);
  time('Filesystem created', sb.mkfsTime, 'created');
  time('Last mount time', sb.mtime, 'lastMountTime');
  time('Last write time', sb.wtime, 'lastWritten');
  add('Mount count', sb.mntCount, 'mountCount', sb.mntCount);
  add('Maximum mount count', sb.maxMntCount, 'maxMountCount', sb.maxMntCount);
  time('Last checked', sb.lastcheck, 'lastChecked');
  add('Check interval', `${sb.checkinterval}${sb.checkinterval === 0 ? ' (<none>)' : ''}`, 'checkInterval', sb.checkinterval);
  add('Reserved blocks uid', sb.defResuid, 'reservedBlocksUid', sb.defResuid);
  add('Reserved blocks gid', sb.defResgid, 'reservedBlocksGid', sb.defResgid);
  add('First inode', sb.firstIno, 'firstInode', sb.firstIno);
  add('Inode size', sb.inodeSize, 'inodeSize', sb.inodeSize);
  if (sb.minExtraIsize !== 0) add('Required extra isize', sb.minExtraIsize, 'requiredExtraIsize', sb.minExtraIsize);
  if (sb.wantExtraIsize !== 0) add('Desired extra isize', sb.wantExtraIsize, 'desiredExtraIsize', sb.wantExtraIsize);
  if (sb.journalUuid.some((b) => b !== 0)) add('Journal UUID', formatUuid(sb.journalUuid), 'journalUuid', formatUuid(sb.journalUuid));
  if (sb.journalInum !== 0) add('Journal inode', sb.journalInum, 'journalInode', sb.journalInum);
  if (sb.journalDev !== 0) add('Journal device', hex(sb.journalDev, 4), 'journalDevice', sb.journalDev);
  if (sb.lastOrphan !== 0) add('First orphan inode', sb.lastOrphan, 'firstOrphanInode', sb.lastOrphan);
  if (sb.hashSeed.some((w) => w !== 0) || sb.defHashVersion !== 0) {
    const hash = HASH_NAMES[sb.defHashVersion] ?? String(sb.defHashVersion);
    add('Default directory hash', hash, 'hashVersion', hash);
    const seed = formatUuid(sb.raw.subarray(SB.hashSeed, SB.hashSeed + 16));
    add('Directory Hash Seed', seed, 'hashSeed', seed);
  }
  if (sb.jnlBackupType !== 0) add('Journal backup', sb.jnlBackupType === 1 ? 'inode blocks' : `type ${sb.jnlBackupType}`, 'journalBackup', sb.jnlBackupType);
  if (sb.usrQuotaInum !== 0) add('User quota inode', sb.usrQuotaInum, 'userQuotaInode', sb.usrQuotaInum);
  if (sb.grpQuotaInum !== 0) add('Group quota inode', sb.grpQuotaInum, 'groupQuotaInode', sb.grpQuotaInum);
  if (sb.prjQuotaInum !== 0) add('Project quota inode', sb.prjQuotaInum, 'projectQuotaInode', sb.prjQuotaInum);
  if (sb.hasMetadataCsum) {
    add('Checksum type', sb.checksumType === 1 ? 'crc32c' : `unknown (${sb.checksumType})`, 'checksumType', sb.checksumType === 1 ? 'crc32c' : sb.checksumType);
    add('Checksum', hex(sb.checksum, 8), 'checksum', sb.checksum);
  }
  if ((sb.featureIncompat & INCOMPAT_CSUM_SEED) !== 0) add('Checksum seed', hex(sb.checksumSeed, 8), 'checksumSeed', sb.checksumSeed);
  if ((sb.featureIncompat & INCOMPAT_CASEFOLD) !== 0) {
    const enc = sb.encoding === 1 ? 'utf8-12.1' : `unknown (${sb.encoding})`;
    add('Character encoding', enc, 'encoding', enc);
    if (sb.encodingFlags !== 0) add('Character encoding flags', (sb.encodingFlags & 1) !== 0 ? 'strict' : hex(sb.encodingFlags), 'encodingFlags', sb.encodingFlags);
  }
  if (sb.orphanFileInum !== 0) add('Orphan file inode', sb.orphanFileInum, 'orphanFileInode', sb.orphanFileInum);
  if (sb.errorCount !== 0) add('FS Error count', sb.errorCount, 'errorCount', sb.errorCount);
  add('ext4ts support', supportLine(check), 'support', { canRead: check.canRead, canWrite: check.canWrite, reasons: check.reasons, unknownFeatures: check.unknown });
  return out;
}

function supportLine(check: FeatureCheck): string {
  if (!check.canRead) return `cannot read it: ${check.reasons.join('; ')}`;
  const head = check.canWrite ? 'read (read-write capable features)' : 'read only';
  return check.reasons.length === 0 ? head : `${head}; ${check.reasons.join('; ')}`;
}

/** The superblock read directly, for images the filesystem layer refuses to open. */
function rawSuperblock(image: string, options: CommonOptions): Superblock {
  const channel = FileChannel.open(image, { readOnly: true, ...(options.offset === undefined ? {} : { offset: options.offset }) });
  try {
    return decodeSuperblock(channel.read(SUPERBLOCK_OFFSET / 1024, 1), { verifyChecksum: options.checksums });
  } finally {
    channel.close();
  }
}

/**
 * What a read-only open does with a journal that needs recovery: the blocks it takes
 * from the journal, or why it cannot (`--no-journal` reads without). Undefined when
 * there is nothing to recover or --no-journal was given.
 */
function journalRecovery(image: string, sb: Superblock, options: InfoOptions): Field | undefined {
  if ((sb.featureIncompat & INCOMPAT_RECOVER) === 0 || options.journal === false) return undefined;
  let text: string;
  let value: { replayedBlocks: number } | { error: string };
  try {
    const fs = openImage(image, options);
    const blocks = fs.replayedBlocks;
    fs.close();
    text = `${blocks} block${blocks === 1 ? '' : 's'} replayed from the journal, in memory (nothing is written)`;
    value = { replayedBlocks: blocks };
  } catch (error) {
    if (!(error instanceof FsError)) throw error;
    text = error.message;
    value = { error: error.message };
  }
  return ['Journal recovery', text, 'journalRecovery', value];
}

export async function info(image: string, options: InfoOptions): Promise<void> {
  let sb: Superblock;
  try {
    // Without the journal: what is shown is the superblock, and a journal that cannot be
    // replayed is reported below rather than failing the command.
    const fs = openImage(image, { ...options, journal: false });
    sb = fs.sb;
    if (options.stats === true) printStats(fs);
    fs.close();
  } catch (error) {
    if (!(error instanceof FsError && error.code === 'EOPNOTSUPP')) throw new Failure(image, error);
    try {
      sb = rawSuperblock(image, options);
    } catch (again) {
      throw new Failure(image, again);
    }
  }
  // What ext4ts could do with it, reads and writes (the filesystem layer only reports reading).
  const check = assessFeatures(sb);
  const list = fields(sb, check);
  const recovery = journalRecovery(image, sb, options);
  if (recovery !== undefined) list.push(recovery);
  const out = new Output();
  if (options.json === true) {
    const obj: Record<string, unknown> = {};
    for (const [, , key, value] of list) obj[key] = value;
    await out.write(`${JSON.stringify(obj)}\n`);
  } else {
    for (const [label, text] of list) await out.write(`${`${label}:`.padEnd(26)}${text}\n`);
  }
  await out.flush();
}
