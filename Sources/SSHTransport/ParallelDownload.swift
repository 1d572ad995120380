import CLibSSH2
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The part of a file still to download, handed out in pieces to the connections that fetch
/// it; a connection that stops gives back what it did not fetch, earliest first out again.
/// Pieces shrink as the end nears (a quarter of what is left, 8 to 32 MiB): few seeks (each
/// costs a round trip while the pipeline refills), yet the connections finish close together.
final class DownloadPieces: @unchecked Sendable {
  static let smallestPiece: Int64 = 8 << 20
  static let largestPiece: Int64 = 32 << 20
  private let lock = NSLock()
  private var next: Int64
  private let end: Int64
  /// False: one connection, the rest of the file is one piece.
  private let shared: Bool
  /// Given back, the latest first (taken from the back).
  private var returned: [Range<Int64>] = []

  init(from start: Int64, to end: Int64, shared: Bool) {
    next = start
    self.end = end
    self.shared = shared
  }

  /// The next piece to fetch; nil when everything is handed out.
  func take() -> Range<Int64>? {
    lock.withLock {
      if let back = returned.popLast() { return back }
      guard next < end else { return nil }
      let left = end - next
      let size =
        shared ? min(max(left / 4, DownloadPieces.smallestPiece), DownloadPieces.largestPiece) : left
      let piece = next..<min(end, next + size)
      next = piece.upperBound
      return piece
    }
  }

  func giveBack(_ range: Range<Int64>) {
    guard !range.isEmpty else { return }
    lock.withLock {
      returned.append(range)
      returned.sort { $0.lowerBound > $1.lowerBound }
    }
  }
}

/// The downloads running in this process. A second connection pays off only while a core
/// would otherwise idle: when two downloads run at once (a capture pulls both sides together)
/// they already keep two cores decrypting, and a third or fourth connection only adds sshd
/// sessions and contention.
enum ActiveDownloads {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var running = 0

  /// Counts a download in; the number of others running.
  static func enter() -> Int {
    lock.withLock {
      running += 1
      return running - 1
    }
  }

  static func leave() { lock.withLock { running -= 1 } }

  /// True when `download` is the only one running and the machine has a core to spare.
  static var alone: Bool {
    lock.withLock { running == 1 } && ProcessInfo.processInfo.activeProcessorCount > 1
  }
}

/// A download's second connection, on its own thread: it connects (never asking at the
/// terminal), then fetches pieces until none is left or it is stopped. When anything fails
/// it just ends: its unfinished piece is back in `pieces` for the first connection.
final class DownloadHelper: @unchecked Sendable {
  private let finished = DispatchSemaphore(value: 0)
  private let stopFlag = JumpTunnel.StopFlag()
  private let lock = NSLock()
  private var fetched = false
  private var joined = false

  init(session: SSHSession, remote: String, pieces: DownloadPieces, sink: DownloadSink) {
    let thread = Thread { [self] in
      defer { finished.signal() }
      run(session, remote, pieces, sink)
    }
    thread.name = "smcpair-download-2"
    thread.stackSize = 1 << 20
    thread.start()
  }

  /// True when it fetched at least one piece.
  var helped: Bool { lock.withLock { fetched } }

  private func run(_ session: SSHSession, _ remote: String, _ pieces: DownloadPieces, _ sink: DownloadSink) {
    guard !stopFlag.isSet, let other = session.companion() else { return }
    defer { other.close() }
    // Another download began while this one connected: it takes the other core.
    guard ActiveDownloads.alone else { return }
    do throws(SSHError) {
      let sftp = try other.sftp()
      defer { _ = try? other.retry("closing SFTP") { libssh2_sftp_shutdown(sftp) } }
      let handle = try other.openRemote(sftp, remote, flags: UInt(LIBSSH2_FXF_READ), mode: 0)
      defer { _ = try? other.retry("closing \(remote)") { libssh2_sftp_close_handle(handle) } }
      _ = try other.fetch(
        handle, remote, pieces: pieces, sink: sink,
        report: {
          self.lock.withLock { self.fetched = true }
          return !self.stopFlag.isSet
        })
    } catch {
      // The first connection fetches what is left and reports its own failures.
    }
  }

  /// Waits until the helper has ended. Safe to repeat.
  func join() {
    let first = lock.withLock {
      defer { joined = true }
      return !joined
    }
    if first { finished.wait() }
  }

  /// Asks the helper to give back its piece and end, then waits for it.
  func stop() {
    stopFlag.set()
    join()
  }
}

/// A download's partial file: `local.partial`, and while several connections write it,
/// `local.partial.done` beside it with the number of bytes from its start that are whole (the
/// file may have holes beyond them if smcpair was killed mid-way).
enum PartialDownload {
  static func notePath(_ partial: String) -> String { partial + ".done" }

  /// The bytes of the partial file (open as `fd`) to resume from; the rest is cut off. Its
  /// size, or less when a note says so; nothing when it is longer than the remote file.
  static func resumePoint(fd: Int32, partial: String, total: Int64) -> Int64 {
    var info = stat()
    let size: Int64 = fstat(fd, &info) == 0 ? Int64(info.st_size) : 0
    var keep = size
    let note = notePath(partial)
    if access(note, F_OK) == 0 {
      // A note that cannot be read trusts nothing.
      let text = (try? String(contentsOfFile: note, encoding: .utf8)) ?? ""
      keep = min(keep, max(0, Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0))
    }
    if keep > total { keep = 0 }
    if keep != size { ftruncate(fd, off_t(keep)) }
    unlink(note)
    return keep
  }

  /// Writes `bytes` into the note (fixed width, so one `pwrite` replaces the old value).
  static func write(_ noteFd: Int32, _ bytes: Int64) {
    guard noteFd >= 0 else { return }
    var text = String(bytes)
    text = String(repeating: " ", count: max(0, 20 - text.count)) + text + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { pwrite(noteFd, $0.baseAddress, $0.count - 1, 0) }
  }
}
