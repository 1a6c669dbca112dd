#!/usr/bin/env python3
"""fscrypt through the kernel's ioctls, for tests that need an encrypted tree as an oracle.

  fscrypt.py add-key MOUNTPOINT        add a fixed 64-byte test key to the filesystem's
                                       keyring; prints its identifier (hex)
  fscrypt.py set-policy DIR IDENTIFIER give empty directory DIR a v2 policy with that key
                                       (AES-256-XTS contents, AES-256-CTS names, 32-byte padding)

The key lives in the filesystem's keyring until the filesystem is unmounted: mounted
again, the tree is seen without the key. (Debian 12 has no fscryptctl; python3 is on
every machine that builds the native addon, since node-gyp needs it.)
"""
import fcntl
import os
import struct
import sys


def ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord('f') << 8) | nr


IOC_WRITE, IOC_READ = 1, 2
# struct fscrypt_add_key_arg: key_spec (u32 type, u32 reserved, u8[32]), u32 raw_size,
# u32 key_id, u32 reserved[8], then raw_size bytes of key.
ADD_KEY_ARG = struct.Struct('<II32sII32s')
FS_IOC_ADD_ENCRYPTION_KEY = ioc(IOC_READ | IOC_WRITE, 23, ADD_KEY_ARG.size)
# struct fscrypt_policy_v1 (12 bytes) is the size the ioctl number carries; v2 is read by version.
FS_IOC_SET_ENCRYPTION_POLICY = ioc(IOC_READ, 19, 12)
KEY_SPEC_TYPE_IDENTIFIER = 2
MODE_AES_256_XTS, MODE_AES_256_CTS, POLICY_FLAGS_PAD_32 = 1, 4, 3
TEST_KEY = bytes(range(64))


def add_key(mountpoint):
    arg = bytearray(ADD_KEY_ARG.pack(KEY_SPEC_TYPE_IDENTIFIER, 0, bytes(32), len(TEST_KEY), 0, bytes(32)) + TEST_KEY)
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, arg)
    finally:
        os.close(fd)
    print(bytes(arg[8:24]).hex())


def set_policy(directory, identifier):
    policy = struct.pack('<BBBBB3s16s', 2, MODE_AES_256_XTS, MODE_AES_256_CTS, POLICY_FLAGS_PAD_32, 0, bytes(3), bytes.fromhex(identifier))
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, policy)
    finally:
        os.close(fd)


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'add-key':
        add_key(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == 'set-policy':
        set_policy(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
