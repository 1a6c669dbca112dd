/** ext4ts: the library entry point. */
export { Ext4, ROOT_INO, type Ext4Options, type OpenFileOptions } from './fs/ext4.js';
export type { Stat, StatFs, DirEntryInfo, FileKind, InodeListing, Timestamp } from './fs/types.js';
export { FsError, ERRNO, type Errno, type ErrorContext } from './errors.js';
export type { IoChannel, IoStats } from './io/channel.js';
export { FileChannel, type FileChannelOptions } from './io/file-channel.js';
export { MemoryChannel, type MemoryChannelOptions } from './io/memory-channel.js';
export { CachingChannel, defaultCacheSize, type CachingChannelOptions, type CacheStats } from './cache/caching-channel.js';
