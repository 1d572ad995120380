/// Bytes from a host, turned into lines and values. Everything here reads what a possibly
/// hostile host sent, so every function is total: bounded memory, no trap on any input
/// (fuzzed: the `remote-replies` target).
public struct LineBuffer: Sendable {
  /// Longest line accepted (without its newline).
  public let maximumLine: Int
  private var bytes: [UInt8] = []
  /// Where the next line starts in `bytes` (consumed lines are dropped in bulk, not one by
  /// one: removing each line from the front would copy the rest every time).
  private var head = 0
  /// How far `bytes` was already searched for a newline.
  private var searched = 0

  public init(maximumLine: Int) { self.maximumLine = maximumLine }

  /// Bytes waiting for their newline.
  public var pendingCount: Int { bytes.count - head }

  /// A line longer than `maximumLine` (no newline within it).
  public struct Overlong: Error, Sendable {
    public var maximumLine: Int
  }

  public mutating func append(_ chunk: some Collection<UInt8>) { bytes.append(contentsOf: chunk) }

  /// The next complete line (without `\n`, a trailing `\r` kept), nil when none is complete
  /// yet. Throws when the bytes waiting already exceed `maximumLine` without a newline; the
  /// buffer is emptied then.
  public mutating func nextLine() throws(Overlong) -> String? {
    var index = max(head, searched)
    while index < bytes.count && bytes[index] != 0x0A { index += 1 }
    guard index < bytes.count else {
      searched = index
      if bytes.count - head > maximumLine {
        bytes = []
        head = 0
        searched = 0
        throw Overlong(maximumLine: maximumLine)
      }
      compact()
      return nil
    }
    guard index - head <= maximumLine else {
      head = index + 1
      searched = head
      compact()
      throw Overlong(maximumLine: maximumLine)
    }
    let line = String(decoding: bytes[head..<index], as: UTF8.self)
    head = index + 1
    searched = head
    compact()
    return line
  }

  private mutating func compact() {
    if head == bytes.count {
      bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 16)
      head = 0
      searched = 0
    } else if head >= 1 << 16 && head * 2 >= bytes.count {
      bytes.removeFirst(head)
      searched -= head
      head = 0
    }
  }
}

/// Short replies of standard commands on a host, parsed strictly.
public enum RemoteReplies {
  /// The digest of a `sha256sum` line (`<64 hex> <name>`), lower-case; nil otherwise.
  public static func sha256(_ text: String) -> String? {
    guard let word = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).first,
      word.utf8.count == 64,
      word.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
    else {
      return nil
    }
    return String(word)
  }

  /// Available MiB from `df -Pk` output: the first line after the header whose fourth column
  /// is a number of KiB.
  public static func freeMiB(fromDF output: String) -> Int64? {
    for line in output.split(separator: "\n").dropFirst() {
      let columns = line.split(separator: " ", omittingEmptySubsequences: true)
      if columns.count >= 4, let kib = Int64(columns[3]), kib >= 0 { return kib / 1024 }
    }
    return nil
  }

  /// The kernel release from `uname -r`: its first line, trimmed, printable ASCII only, at
  /// most 128 characters; nil when there is none.
  public static func kernelRelease(_ text: String) -> String? {
    let first = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    let trimmed = first.trimmingASCIISpace()
    guard !trimmed.isEmpty, trimmed.count <= 128, trimmed.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
    else {
      return nil
    }
    return trimmed
  }

  /// What the agent check script printed before `smcpair-start`: the digest line of the
  /// agent binary, `smcpair-df`, then df's lines. The digest is nil when the binary is
  /// missing (or the line is not a sha256sum line).
  public static func agentCheck(_ lines: [String]) -> (digest: String?, df: String) {
    let digest = lines.first.flatMap(sha256)
    let df = lines.dropFirst().drop { $0 != "smcpair-df" }.dropFirst().joined(separator: "\n")
    return (digest, df)
  }
}

extension Substring {
  func trimmingASCIISpace() -> String {
    var view = self[...]
    while let first = view.first, first == " " || first == "\t" || first == "\r" { view = view.dropFirst() }
    while let last = view.last, last == " " || last == "\t" || last == "\r" { view = view.dropLast() }
    return String(view)
  }
}
