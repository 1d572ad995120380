#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The path of another smcpair executable installed next to the running one.
///
/// The running executable is found through `/proc/self/exe` (a symbolic link smcpair may be
/// started through does not count), else the command line's first argument.
public func siblingExecutable(_ name: String) -> String {
  let me = runningExecutable() ?? CommandLine.arguments[0]
  let folder = me.lastIndex(of: "/").map { String(me[..<$0]) } ?? ""
  return folder + "/" + name
}

/// `/proc/self/exe`'s target, nil where there is no such link.
private func runningExecutable() -> String? {
  var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
  let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
  guard length > 0 else { return nil }
  return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
