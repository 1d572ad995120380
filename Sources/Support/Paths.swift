/// The folder part of `path`, as `dirname` without its `.` for a bare name: "" for `m`,
/// `/` for `/a`, `a` for `a/b`, `a` for `a/b/` (trailing slashes do not name a component).
///
/// Foundation's `NSString.deletingLastPathComponent` crashes on a one-character name without
/// a slash (swift-corelibs-foundation on this toolchain: `--out m` died with SIGILL), so
/// smcpair's own paths go through this instead.
public func parentFolder(of path: String) -> String {
  var bytes = Array(path.utf8)
  while bytes.count > 1, bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
  guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "" }
  var end = slash
  while end > 0, bytes[end - 1] == UInt8(ascii: "/") { end -= 1 }
  return end == 0 ? "/" : String(decoding: bytes[..<end], as: UTF8.self)
}
