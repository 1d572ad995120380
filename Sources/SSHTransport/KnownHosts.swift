import Checksum
import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// The known_hosts files OpenSSH would read for a connection, read the way OpenSSH reads
/// them (hostfile.c): bytes, not text; fields separated by any run of spaces and tabs; `\r`
/// before the line end ignored; host names compared in lower case (hashed `|1|salt|hash`
/// names are hashes of the lower-case name); `[host]:port` for ports other than 22; comma
/// lists with `*`, `?` and `!negation`; `@revoked` and `@cert-authority` markers.
///
/// It fails closed: a file that exists but cannot be read, or a line that names the host
/// but cannot be parsed, is an error with `file:line`, never "not known".
public struct KnownHosts: Sendable {
  public struct Entry: Sendable, Equatable {
    public enum Marker: Sendable, Equatable {
      case none
      case revoked
      /// A CA key for host certificates (libssh2 1.10 has none: never matches a plain key).
      case certAuthority
    }

    public var file: String
    public var line: Int
    public var marker: Marker
    public var keyType: String
    public var key: [UInt8]
    public var revoked: Bool { marker == .revoked }
    /// `file:line`, for messages.
    public var location: String { "\(file):\(line)" }
  }

  /// A line whose host patterns name the host but whose rest cannot be read.
  public struct Problem: Sendable, Equatable {
    public var line: Int
    public var reason: String
  }

  /// The user files (`UserKnownHostsFile`, `--known-hosts`, the inventory's `known_hosts:`),
  /// in order: new keys are recorded in the first.
  public let userFiles: [String]
  /// `GlobalKnownHostsFile` (read, never written).
  public let globalFiles: [String]

  public init(userFiles: [String], globalFiles: [String]) {
    self.userFiles = userFiles
    self.globalFiles = globalFiles
  }

  /// One file only (no global files).
  public init(path: String) { self.init(userFiles: [path], globalFiles: []) }

  /// OpenSSH's defaults for a home folder.
  public static func defaultUserFiles(home: String) -> [String] {
    ["\(home)/.ssh/known_hosts", "\(home)/.ssh/known_hosts2"]
  }
  public static let defaultGlobalFiles = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]

  /// Where new keys go: the first user file.
  public var recordFile: String? { userFiles.first }

  /// Every file, user files first.
  public var files: [String] { userFiles + globalFiles }

  /// How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise.
  public static func name(host: String, port: Int) -> String { port == 22 ? host : "[\(host)]:\(port)" }

  /// The name known_hosts entries are matched against: lower case, as OpenSSH does.
  public static func lookupName(host: String, port: Int) -> String {
    name(host: String(decoding: Array(host.utf8).map(lower), as: UTF8.self), port: port)
  }

  /// Entries for `host:port` in every file, in file order (user files first). Throws when a
  /// file exists but cannot be read, or a line names the host but cannot be parsed.
  public func entries(host: String, port: Int) throws(SSHError) -> [Entry] {
    let wanted = KnownHosts.lookupName(host: host, port: port)
    var out: [Entry] = []
    for file in files {
      guard let bytes = try KnownHosts.read(file, host: wanted) else { continue }
      let parsed = KnownHosts.parse(bytes, file: file, name: wanted)
      if let problem = parsed.problems.first {
        throw SSHError(
          .knownHostsUnreadable, host: wanted,
          "\(file):\(problem.line) names \(wanted) but cannot be read (\(problem.reason)); refusing to trust or record any key for this host until that line is fixed or removed"
        )
      }
      out += parsed.entries
    }
    return out
  }

  /// The file's bytes; nil when it does not exist (OpenSSH skips missing files).
  static func read(_ path: String, host: String) throws(SSHError) -> [UInt8]? {
    do throws(Errno) {
      let fd = try FileDescriptor.open(path, O_RDONLY)
      defer { try? fd.close() }
      return try fd.readToEnd(chunk: 65536)
    } catch {
      if error == .noSuchFileOrDirectory { return nil }
      throw SSHError(
        .knownHostsUnreadable, host: host,
        "cannot read known_hosts file \(path): \(error); refusing rather than treating the host as unknown"
      )
    }
  }

  /// Parses one file's bytes: the entries whose host patterns match `name` (already a
  /// `lookupName`), and the lines that match `name` but cannot be read.
  public static func parse(_ bytes: [UInt8], file: String, name: String) -> (
    entries: [Entry], problems: [Problem]
  ) {
    let wanted = Array(name.utf8)
    var entries: [Entry] = []
    var problems: [Problem] = []
    var lineNumber = 0
    var start = 0
    while start <= bytes.count {
      lineNumber += 1
      var end = start
      while end < bytes.count && bytes[end] != 0x0A { end += 1 }
      defer { start = end + 1 }
      if end == bytes.count && start == end { break }
      var fields = Fields(bytes[start..<end])
      guard var first = fields.next(), first.first != UInt8(ascii: "#") else { continue }
      var marker = Entry.Marker.none
      var badMarker: String?
      if first.first == UInt8(ascii: "@") {
        switch String(decoding: first, as: UTF8.self) {
        case "@revoked": marker = .revoked
        case "@cert-authority": marker = .certAuthority
        default: badMarker = String(decoding: first.prefix(40), as: UTF8.self)
        }
        guard let hosts = fields.next() else { continue }
        first = hosts
      }
      guard hostFieldMatches(first, wanted) else { continue }
      if let badMarker {
        problems.append(Problem(line: lineNumber, reason: "unknown marker \(badMarker)"))
        continue
      }
      guard let typeField = fields.next() else {
        problems.append(Problem(line: lineNumber, reason: "no key type and key"))
        continue
      }
      let keyType = String(decoding: typeField, as: UTF8.self)
      guard let keyField = fields.next() else {
        problems.append(Problem(line: lineNumber, reason: "no key after \(keyType.prefix(40))"))
        continue
      }
      guard let key = Data(base64Encoded: Data(keyField)).map(Array.init), !key.isEmpty else {
        problems.append(Problem(line: lineNumber, reason: "the key is not valid base64"))
        continue
      }
      guard let embedded = KeyFile.typeName(fromBlob: key), embedded == keyType else {
        problems.append(Problem(line: lineNumber, reason: "the key is not a \(keyType.prefix(40)) key"))
        continue
      }
      entries.append(Entry(file: file, line: lineNumber, marker: marker, keyType: keyType, key: key))
    }
    return (entries, problems)
  }

  /// Space- and tab-separated fields of one line (a `\r` counts as space, as before a LF).
  struct Fields {
    var rest: ArraySlice<UInt8>
    init(_ line: ArraySlice<UInt8>) { rest = line }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    mutating func next() -> ArraySlice<UInt8>? {
      while let byte = rest.first, Fields.isSpace(byte) { rest = rest.dropFirst() }
      guard !rest.isEmpty else { return nil }
      let end = rest.firstIndex(where: Fields.isSpace) ?? rest.endIndex
      defer { rest = rest[end...] }
      return rest[rest.startIndex..<end]
    }
  }

  /// OpenSSH's `match_maybe_hashed` + `match_hostname`: a hashed name, or a comma list where
  /// a matching `!pattern` excludes the line.
  static func hostFieldMatches(_ field: ArraySlice<UInt8>, _ name: [UInt8]) -> Bool {
    let hashPrefix = Array("|1|".utf8)
    if field.starts(with: hashPrefix) {
      let body = field.dropFirst(3)
      guard let bar = body.firstIndex(of: UInt8(ascii: "|")),
        let salt = Data(base64Encoded: Data(body[body.startIndex..<bar])),
        let hash = Data(base64Encoded: Data(body[(bar + 1)...]))
      else { return false }
      return SHA1.hmac(key: Array(salt), message: name) == Array(hash)
    }
    var matched = false
    for pattern in field.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
      if pattern.first == UInt8(ascii: "!") {
        if glob(Array(pattern.dropFirst()), name) { return false }
      } else if glob(Array(pattern), name) {
        matched = true
      }
    }
    return matched
  }

  /// A comma-separated pattern list (with `*`, `?`, `!` negation) or one hashed name,
  /// matched against `name` (an already lower-cased `lookupName`).
  public static func patternMatches(_ patterns: String, name: String) -> Bool {
    hostFieldMatches(ArraySlice(patterns.utf8), Array(name.utf8).map(lower))
  }

  static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }

  /// OpenSSH-style wildcard match (`*` any run, `?` one byte), ASCII case-insensitive.
  static func glob(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
    let p = pattern.map(lower)
    let t = text.map(lower)
    var pi = 0
    var ti = 0
    var star = -1
    var mark = 0
    while ti < t.count {
      if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) {
        pi += 1
        ti += 1
      } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
        star = pi
        mark = ti
        pi += 1
      } else if star >= 0 {
        pi = star + 1
        mark += 1
        ti = mark
      } else {
        return false
      }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
  }

  static func glob(_ pattern: String, _ text: String) -> Bool { glob(Array(pattern.utf8), Array(text.utf8)) }

  /// Appends `host:port keyType key` (what OpenSSH's accept-new records) to the first user file.
  public func append(host: String, port: Int, keyType: String, key: [UInt8]) throws(SSHError) {
    guard let path = recordFile else {
      throw SSHError(
        .hostKeyUnknown, host: host, "no user known_hosts file to record the key in (UserKnownHostsFile none)"
      )
    }
    let line =
      "\(KnownHosts.lookupName(host: host, port: port)) \(keyType) \(Data(key).base64EncodedString())\n"
    let directory = parentFolder(of: path)
    if !directory.isEmpty {
      try? FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw SSHError(
        .hostKeyUnknown, host: host,
        "cannot write \(path) to record the host key: \(Errno.current)")
    }
    defer { close(fd) }
    var bytes = Array(line.utf8)
    var size = stat()
    if fstat(fd, &size) == 0 && size.st_size > 0 {
      var last: UInt8 = 0
      if pread(fd, &last, 1, size.st_size - 1) == 1 && last != 0x0A { bytes.insert(0x0A, at: 0) }
    }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count else {
      throw SSHError(.hostKeyUnknown, host: host, "cannot write \(path): \(Errno.current)")
    }
  }

  /// `SHA256:` + unpadded base64 of the key blob, as `ssh-keygen -l` prints it.
  public static func fingerprint(_ key: [UInt8]) -> String {
    var hasher = SHA256()
    hasher.update(key)
    var text = Data(hasher.finalize()).base64EncodedString()
    while text.hasSuffix("=") { text.removeLast() }
    return "SHA256:" + text
  }
}
