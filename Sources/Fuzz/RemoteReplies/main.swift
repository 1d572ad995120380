// Fuzz target: bytes a host sends on a channel, as the coordinator reads them: split into
// lines (in pieces of sizes taken from the input, with a small line limit so that overlong
// lines are reached), then each line and the whole text as sha256sum, uname -r, df -Pk and
// agent-check replies.
import FuzzReplay
import SSHTransport

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  guard let first = bytes.first else { return }
  let limit = Int(first) + 1
  var buffer = LineBuffer(maximumLine: limit)
  var lines: [String] = []
  var offset = 1
  var piece = 1
  while offset < bytes.count {
    // Piece sizes 1...64 from the data itself: lines arrive split anywhere.
    piece = Int(bytes[offset]) % 64 + 1
    let end = min(bytes.count, offset + piece)
    buffer.append(bytes[offset..<end])
    offset = end
    while true {
      do {
        guard let line = try buffer.nextLine() else { break }
        precondition(line.utf8.count <= limit * 3, "a line longer than the limit came through")
        lines.append(line)
      } catch {
        precondition(error.maximumLine == limit)
      }
    }
    precondition(buffer.pendingCount <= limit + piece, "the buffer grew past its limit")
  }
  let text = String(decoding: bytes, as: UTF8.self)
  for candidate in lines + [text] {
    if let digest = RemoteReplies.sha256(candidate) { precondition(digest.utf8.count == 64) }
    if let kernel = RemoteReplies.kernelRelease(candidate) {
      precondition(!kernel.isEmpty && kernel.count <= 128)
    }
  }
  if let free = RemoteReplies.freeMiB(fromDF: text) { precondition(free >= 0) }
  let check = RemoteReplies.agentCheck(lines)
  _ = check.df.count
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-remote-replies", fuzzInput) }
}
