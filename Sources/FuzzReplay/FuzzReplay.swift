import Support

#if canImport(Glibc)
  import Glibc
#endif

#if SMCPAIR_LIBFUZZER
  /// libFuzzer's driver (linked by -sanitize=fuzzer; its own `main` is not used, because
  /// SwiftPM gives every executable a main of its own).
  @_silgen_name("LLVMFuzzerRunDriver")
  func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
  ) -> CInt
#endif

/// The main of a fuzz target. Built by scripts/fuzz (`-D SMCPAIR_LIBFUZZER`, with
/// `-sanitize=fuzzer,address`) it runs libFuzzer; built normally it replays every input file
/// named on the command line (folders: every file in them) once, for the tests.
public enum FuzzReplay {
  public static func main(name: String, _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) {
    #if SMCPAIR_LIBFUZZER
      var argc = CommandLine.argc
      var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
      exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
    #else
      run(name: name) { bytes in
        _ = callback(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
      }
    #endif
  }

  static func run(name: String, _ body: (UnsafeRawBufferPointer) -> Void) {
    var count = 0
    for argument in CommandLine.arguments.dropFirst() {
      for path in files(argument) {
        guard let bytes = read(path) else {
          let message = "\(name): cannot read \(path)\n"
          _ = message.withCString { write(2, $0, strlen($0)) }
          exit(1)
        }
        bytes.withUnsafeBytes(body)
        count += 1
      }
    }
    print("\(name): \(count) inputs replayed, no crash")
  }

  static func files(_ path: String) -> [String] {
    var info = stat()
    guard stat(path, &info) == 0 else { return [path] }
    guard info.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) else { return [path] }
    defer { closedir(dir) }
    var out: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." && !name.hasPrefix(".") { out.append("\(path)/\(name)") }
    }
    return out.sorted()
  }

  /// The whole file; nil when it cannot be opened or read.
  static func read(_ path: String) -> [UInt8]? {
    guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
    defer { try? fd.close() }
    return try? fd.readToEnd(chunk: 65536)
  }
}
