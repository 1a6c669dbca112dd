#!/usr/bin/env bash
# The main job on a sample image: make an ext4 image of a sample tree with mke2fs -d,
# show it with ext4ts, mount it with ext4ts (FUSE, read-write), compare the mount with
# the source tree, copy, change and delete files through it, unmount, copy more in
# with `ext4ts put`, and check the image with e2fsck. Needs root (or fuse3's
# fusermount3) and e2fsprogs.
set -euo pipefail
cd "$(dirname "$0")/.."
work=.demo
src=$work/sample
img=$work/sample.img
mnt=$work/mnt
cli=(node dist/cli/ext4ts.js)
[ -f dist/cli/ext4ts.js ] || npm run build >/dev/null
rm -rf "$work" && mkdir -p "$src" "$mnt"
# A sample tree: the project's sources and dependencies (thousands of small files),
# plus a symlink, a hard link, a sparse file and an xattr.
cp -a src test node_modules/commander node_modules/fast-check node_modules/@eslint "$src/"
ln -s src/fs/ext4.ts "$src/link-to-ext4.ts"
ln "$src/src/errors.ts" "$src/hardlink-to-errors.ts"
truncate -s 1G "$src/sparse-1G"
command -v setfattr >/dev/null && setfattr -n user.demo -v hello "$src/src/errors.ts" || true
mke2fs -q -F -t ext4 -d "$src" "$img" 256M
echo "== ext4ts info $img"
"${cli[@]}" info "$img" | sed -n '1,12p'
echo "== ext4ts ls -l $img /"
"${cli[@]}" ls -l "$img" /
echo "== ext4ts mount $img $mnt"
"${cli[@]}" mount "$img" "$mnt"
trap '"${cli[@]}" umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true' EXIT
echo "entries: $(find "$mnt" | wc -l)   disk usage: $(du -sh "$mnt" | cut -f1)   statfs: $(stat -f -c '%b blocks of %S bytes, %f free' "$mnt")"
if diff -r --no-dereference -x lost+found "$src" "$mnt" >/dev/null; then echo "mount and source tree are identical (diff -r)"; else echo "DIFFERENCES between mount and source"; exit 1; fi
echo "== writing through the mount: cp -a, mv, rm -r, append"
cp -a src "$mnt/copied-src"
mv "$mnt/test" "$mnt/tests-moved"
rm -r "$mnt/@eslint"
echo "written through ext4ts" >> "$mnt/src/errors.ts"
if diff -r src "$mnt/copied-src" >/dev/null; then echo "copied tree is identical (diff -r)"; else echo "DIFFERENCES in the copied tree"; exit 1; fi
echo "== ext4ts umount $mnt"
"${cli[@]}" umount "$mnt"
trap - EXIT
echo "== ext4ts put $img bench /put-here ; ext4ts ls $img /"
"${cli[@]}" mkdir "$img" /put-here
"${cli[@]}" put "$img" bench /put-here
"${cli[@]}" ls "$img" /
echo "== e2fsck -fn $img"
e2fsck -fn "$img"
echo "done"
