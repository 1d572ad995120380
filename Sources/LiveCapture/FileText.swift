import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Small files read whole, without Foundation (the agent ships without it).
public enum FileText {
  /// A whole (small) file as text; nil when it cannot be opened.
  public static func read(_ path: String) -> String? {
    guard let file = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
    defer { try? file.close() }
    // A read error ends the text where it happened, as the end of the file would.
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while let n = try? file.read(into: &buffer), n > 0 {
      out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
  }
}
