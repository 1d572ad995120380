import CLibSSH2
import Checksum
import Foundation
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// What a transfer did.
public struct TransferResult: Sendable {
  public var bytes: Int64
  /// Bytes that were already there (resumed download).
  public var resumedFrom: Int64
  public var sha256: String
  public var seconds: Double
  /// Connections that carried the data (2 when a download's second connection helped).
  public var connections = 1
}

/// Progress: (bytes done, total). Return false to cancel.
public typealias TransferProgress = (Int64, Int64) -> Bool

extension SSHSession {
  func sftp() throws(SSHError) -> OpaquePointer {
    let deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      if let sftp = libssh2_sftp_init(session) { return sftp }
      let code = lastErrorCode()
      guard code == LibSSH2.eagain else { throw SSHSession.error(session, label, "starting SFTP", code) }
      try waitForSocket("starting SFTP", deadline: deadline)
    }
  }

  func sftpError(_ sftp: OpaquePointer, _ what: String, _ path: String) -> SSHError {
    let code = libssh2_sftp_last_error(sftp)
    let reason =
      switch UInt(code) {
      case LIBSSH2_FX_NO_SUCH_FILE: "no such file"
      case LIBSSH2_FX_PERMISSION_DENIED: "permission denied"
      case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: "no space left on the remote file system"
      case LIBSSH2_FX_FAILURE: "failure"
      default: "SFTP status \(code)"
      }
    return SSHError(.sftp, host: label, "\(what) \(path): \(reason)")
  }

  func openRemote(_ sftp: OpaquePointer, _ path: String, flags: UInt, mode: Int) throws(SSHError)
    -> OpaquePointer
  {
    let deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      if let handle = libssh2_sftp_open_ex(
        sftp, path, UInt32(path.utf8.count), flags, mode, LIBSSH2_SFTP_OPENFILE)
      {
        return handle
      }
      let code = lastErrorCode()
      if code == LIBSSH2_ERROR_SFTP_PROTOCOL { throw sftpError(sftp, "cannot open", path) }
      guard code == LibSSH2.eagain else { throw SSHSession.error(session, label, "opening \(path)", code) }
      try waitForSocket("opening \(path)", deadline: deadline)
    }
  }

  func remoteSize(_ sftp: OpaquePointer, _ path: String) throws(SSHError) -> Int64 {
    var attributes = LIBSSH2_SFTP_ATTRIBUTES()
    do throws(SSHError) {
      _ = try retry("stat \(path)") {
        libssh2_sftp_stat_ex(sftp, path, UInt32(path.utf8.count), LIBSSH2_SFTP_STAT, &attributes)
      }
    } catch {
      if lastErrorCode() == LIBSSH2_ERROR_SFTP_PROTOCOL { throw sftpError(sftp, "cannot read", path) }
      throw error
    }
    return Int64(attributes.filesize)
  }

  /// The command that prints `<sha256> <name>` for `path` on a host: OpenSSL's digest when
  /// the host has it (it uses the CPU's SHA instructions: 0.16 s of CPU for 160 MB where
  /// coreutils' sha256sum takes 0.94 s here), else `sha256sum`. The script is fixed text;
  /// the path is its positional argument.
  static func sha256Command(_ path: String) -> String {
    RemoteCommand.join([
      "sh", "-c",
      #"d=$(openssl dgst -sha256 -r -- "$1" 2>/dev/null) && printf '%s\n' "$d" || exec sha256sum -- "$1""#,
      "smcpair-sha256", path,
    ])
  }

  /// The remote file's SHA-256 (`sha256sum` on the host).
  public func remoteSHA256(_ path: String) throws(SSHError) -> String {
    let output = try run(
      SSHSession.sha256Command(path), purpose: "checksumming \(path) on the host (sha256sum)")
    guard output.exitStatus == 0, let digest = RemoteReplies.sha256(output.stdoutText) else {
      throw SSHError(.checksum, host: label, "cannot checksum \(path) on the host: \(output.stderrText)")
    }
    return digest
  }

  /// Downloads of this many bytes or more (still to fetch) may use a second connection.
  static let parallelDownloadMinimum: Int64 = 32 << 20

  /// Downloads `remote` to `local` with pipelined SFTP reads (each read asks for up to 2 MiB
  /// or more, so libssh2 keeps 8 MiB of requests in flight). From 32 MiB on, a second
  /// connection to the host helps when it authenticates without a prompt
  /// (`SSHOptions.downloadConnections`) and no other download runs in this process
  /// (`ActiveDownloads`): libssh2 1.10 decrypts one 16-byte block per cipher
  /// call, so one connection is bound to one core; the two fetch pieces of 8-32 MiB in turn
  /// into the same file. The data goes to `local.partial` first; an existing partial file is
  /// resumed. A writer thread writes the data and computes the SHA-256 in file order as the
  /// bytes become contiguous (it first streams a resumed prefix through the hash, never
  /// holding the file in memory), so the reading threads only move bytes off the connections.
  /// The digest is compared with `expectedSHA256`, or with the host's (`sha256Command`), which
  /// runs on another channel during the transfer — unless `hostDigest` is false (a host
  /// without `sha256sum`: the caller then verifies the copy otherwise, e.g. by its size and a
  /// full read of its structure, and the local digest is only reported). On a match the file is renamed to `local`;
  /// on any failure the partial file keeps every byte from its start that arrived without a
  /// gap, so running it again resumes. `progress` counts those bytes.
  public func download(
    _ remote: String, to local: String, expectedSHA256: String? = nil, hostDigest: Bool = true,
    progress: TransferProgress? = nil
  ) throws(SSHError) -> TransferResult {
    let started = Date()
    let sftp = try self.sftp()
    defer { _ = try? retry("closing SFTP") { libssh2_sftp_shutdown(sftp) } }
    let total = try remoteSize(sftp, remote)
    let partial = local + ".partial"
    let fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw SSHError(.transfer, host: label, "cannot write \(partial): \(Errno.current)")
    }
    defer { Glibc.close(fd) }
    // Resume: keep what an earlier, cut transfer already wrote without a gap.
    let resumedFrom = PartialDownload.resumePoint(fd: fd, partial: partial, total: total)
    let others = ActiveDownloads.enter()
    defer { ActiveDownloads.leave() }
    let parallel =
      options.downloadConnections > 1 && total - resumedFrom >= SSHSession.parallelDownloadMinimum
      && others == 0 && ActiveDownloads.alone
    let sink = DownloadSink(fd: fd, path: partial, resumedFrom: resumedFrom, readers: parallel ? 2 : 1)
    // Everything handed over is written before the file is closed, on every path; what lies
    // beyond the first gap is cut off, so that running it again resumes from a whole prefix.
    defer {
      sink.finish()
      sink.keepContiguous()
    }
    // The host checksums its copy meanwhile, on its own channel.
    let remoteDigest =
      expectedSHA256 == nil && hostDigest ? try RemoteDigest(session: self, path: remote) : nil
    let handle = try openRemote(sftp, remote, flags: UInt(LIBSSH2_FXF_READ), mode: 0)
    defer { _ = try? retry("closing \(remote)") { libssh2_sftp_close_handle(handle) } }
    // Without its note (it could not be created) the file must not get holes: one reader.
    let helped = parallel && sink.keepsNote
    let pieces = DownloadPieces(from: resumedFrom, to: total, shared: helped)
    let helper = helped ? DownloadHelper(session: self, remote: remote, pieces: pieces, sink: sink) : nil
    let report: () -> Bool = {
      remoteDigest?.poll()
      return progress?(sink.contiguousBytes, total) ?? true
    }
    var completed: Bool
    do throws(SSHError) {
      completed = try fetch(handle, remote, pieces: pieces, sink: sink, report: report)
      helper?.join()
      // Pieces the helper gave up on (its connection failed) are fetched here.
      if completed { completed = try fetch(handle, remote, pieces: pieces, sink: sink, report: report) }
    } catch {
      helper?.stop()
      throw error
    }
    helper?.stop()
    guard completed else {
      throw SSHError(
        .cancelled, host: label,
        "download of \(remote) cancelled at \(sink.contiguousBytes) of \(total) bytes; run it again to resume"
      )
    }
    sink.finish()
    guard sink.contiguousBytes == total else {
      throw SSHError(
        .transfer, host: label,
        "\(remote) arrived incomplete (\(sink.contiguousBytes) of \(total) bytes); run it again to resume")
    }
    let digest = try sink.digest()
    let expected: String
    if let expectedSHA256 {
      expected = expectedSHA256
    } else if let remoteDigest {
      expected = try remoteDigest.result()
    } else {
      // No digest to compare with (hostDigest: false): the caller verifies the copy.
      expected = digest
    }
    try accept(partial, as: local, remote: remote, digest: digest, expected: expected)
    return TransferResult(
      bytes: total, resumedFrom: resumedFrom, sha256: digest, seconds: Date().timeIntervalSince(started),
      connections: helper?.helped == true ? 2 : 1)
  }

  /// Fetches pieces from `pieces` until none is left; a piece not finished (a failure, or
  /// `report` returning false) goes back. False when `report` stopped it.
  func fetch(
    _ handle: OpaquePointer, _ remote: String, pieces: DownloadPieces, sink: DownloadSink,
    report: () -> Bool
  ) throws(SSHError) -> Bool {
    while let piece = pieces.take() {
      var position = piece.lowerBound
      do throws(SSHError) {
        let whole = try fetch(
          handle, remote, from: piece.lowerBound, to: piece.upperBound, sink: sink, position: &position,
          report: { _ in report() })
        if !whole {
          pieces.giveBack(position..<piece.upperBound)
          return false
        }
      } catch {
        pieces.giveBack(position..<piece.upperBound)
        throw error
      }
    }
    return true
  }

  /// Reads `[from, to)` of an open remote file into `sink`'s buffers; `position` says how far
  /// it got (everything before it is handed over, on every path). `report` gets the position
  /// after each read and returns false to stop; the result is false when it was stopped.
  func fetch(
    _ handle: OpaquePointer, _ remote: String, from: Int64, to end: Int64, sink: DownloadSink,
    position: inout Int64, report: (Int64) -> Bool
  ) throws(SSHError) -> Bool {
    libssh2_sftp_seek64(handle, UInt64(from))
    position = from
    var at = from
    // The buffer being filled and where it starts in the file.
    var buffer: UnsafeMutableRawBufferPointer?
    var bufferStart = from
    var filled = 0
    func handOver() throws(SSHError) {
      if let full = buffer { try sink.submit(full, count: filled, at: bufferStart) }
      buffer = nil
      filled = 0
    }
    defer { position = bufferStart + Int64(filled) }
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    do throws(SSHError) {
      while at < end {
        let current: UnsafeMutableRawBufferPointer
        if let buffer {
          current = buffer
        } else {
          current = try sink.take()
          buffer = current
          bufferStart = at
        }
        // libssh2 keeps up to 4x the room in requests ahead: a quarter of what is left keeps
        // them inside the range, so nothing past its end is sent, decrypted and dropped when
        // the next piece seeks (at most 3 x 32 KiB at the very end).
        let ahead = Int(clamping: end - at)
        let room = min(current.count - filled, max(ahead / 4, min(ahead, 32 << 10)))
        // The sink's buffers are never empty (DownloadSink allocates them), so the slice has a base.
        let n = libssh2_sftp_read(
          handle, UnsafeMutableRawBufferPointer(rebasing: current[filled...]).baseAddress, room)
        if n > 0 {
          filled += n
          at += Int64(n)
          // Hand the buffer over while a read can still ask for the full read-ahead.
          if current.count - filled < DownloadSink.minimumRead || at >= end {
            try handOver()
            bufferStart = at
          }
          deadline = Date().addingTimeInterval(options.inactivityTimeout)
          if !report(at) {
            try handOver()
            bufferStart = at
            return false
          }
        } else if n == 0 {
          break
        } else if Int32(n) == LibSSH2.eagain {
          _ = report(at)
          try waitForSocket("downloading \(remote)", deadline: deadline)
        } else {
          throw SSHError(
            .transfer, host: label,
            "download of \(remote) broke off at \(at) bytes (\(SSHSession.error(session, label, "read", Int32(n)).message)); run it again to resume"
          )
        }
      }
      try handOver()
      bufferStart = at
    } catch {
      try? handOver()
      bufferStart = at
      throw error
    }
    guard at >= end else {
      throw SSHError(
        .transfer, host: label, "\(remote) ended at \(at) bytes, expected \(end); run it again to resume")
    }
    return true
  }

  /// The end of every download: `partial` becomes `local` only when its SHA-256 is the one
  /// expected; otherwise it is removed. `expectedFrom` says who vouched for `expected`.
  public func accept(
    _ partial: String, as local: String, remote: String, digest: String, expected: String,
    expectedFrom: String = "the host has"
  ) throws(SSHError) {
    guard digest == expected else {
      unlink(partial)
      throw SSHError(
        .checksum, host: label,
        "\(remote) arrived with SHA-256 \(digest) but \(expectedFrom) \(expected); the copy was removed, download again"
      )
    }
    guard rename(partial, local) == 0 else {
      throw SSHError(
        .transfer, host: label, "cannot rename \(partial) to \(local): \(Errno.current)")
    }
  }

  /// Uploads `local` to `remote` with `mode`: written under a temporary name next to it and
  /// renamed when complete, so the remote path never holds a partial file.
  public func upload(_ local: String, to remote: String, mode: Int = 0o644, progress: TransferProgress? = nil)
    throws(SSHError) -> TransferResult
  {
    let started = Date()
    let fd: FileDescriptor
    do { fd = try FileDescriptor.open(local, O_RDONLY) } catch {
      throw SSHError(.transfer, host: label, "cannot read \(local): \(error)")
    }
    defer { try? fd.close() }
    var info = stat()
    fstat(fd.rawValue, &info)
    let total = Int64(info.st_size)
    let sftp = try self.sftp()
    defer { _ = try? retry("closing SFTP") { libssh2_sftp_shutdown(sftp) } }
    let temporary = SSHSession.temporaryName(next: remote)
    let handle = try openRemote(
      sftp, temporary, flags: UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC), mode: mode)
    let sent: Int64
    let digest: String
    do throws(SSHError) {
      (sent, digest) = try copy(fd, named: local, to: handle, sftp: sftp, temporary: temporary) { sent in
        progress.map { $0(sent, total) } ?? true
      }
      _ = try retry("closing \(temporary)") { libssh2_sftp_close_handle(handle) }
    } catch {
      _ = try? retry("closing \(temporary)") { libssh2_sftp_close_handle(handle) }
      _ = try? retry("removing \(temporary)") {
        libssh2_sftp_unlink_ex(sftp, temporary, UInt32(temporary.utf8.count))
      }
      throw error
    }
    try moveIntoPlace(sftp, temporary, as: remote)
    try setMode(sftp, remote, mode)
    return TransferResult(
      bytes: sent, resumedFrom: 0, sha256: digest, seconds: Date().timeIntervalSince(started))
  }

  /// A name next to `remote` that no other upload (from this or another process) picks.
  static func temporaryName(next remote: String) -> String {
    let directory = parentFolder(of: remote)
    return (directory.isEmpty ? "" : directory + "/")
      + ".\((remote as NSString).lastPathComponent).smcpair-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  }

  /// Copies the local file `fd` to the open remote `handle`, hashing as it goes; the bytes
  /// sent and their SHA-256. `keepGoing` sees the bytes sent after each piece; false cancels.
  private func copy(
    _ fd: FileDescriptor, named local: String, to handle: OpaquePointer, sftp: OpaquePointer,
    temporary: String,
    keepGoing: (Int64) -> Bool
  ) throws(SSHError) -> (sent: Int64, sha256: String) {
    var hasher = SHA256()
    var sent: Int64 = 0
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while true {
      let n: Int
      do { n = try fd.read(into: &buffer) } catch {
        throw SSHError(.transfer, host: label, "reading \(local): \(error)")
      }
      if n == 0 { break }
      buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
      var offset = 0
      while offset < n {
        let w = buffer.withUnsafeBytes {
          libssh2_sftp_write(
            handle, UnsafeRawBufferPointer(rebasing: $0[offset..<n]).baseAddress, n - offset)
        }
        if w > 0 {
          offset += w
          sent += Int64(w)
          deadline = Date().addingTimeInterval(options.inactivityTimeout)
        } else if Int32(w) == LibSSH2.eagain {
          try waitForSocket("uploading \(local)", deadline: deadline)
        } else {
          throw sftpError(sftp, "writing", temporary)
        }
      }
      if !keepGoing(sent) {
        throw SSHError(.cancelled, host: label, "upload of \(local) cancelled")
      }
    }
    return (sent, hasher.finalizeHex())
  }

  /// Renames the finished `temporary` to `remote`, replacing what is there.
  private func moveIntoPlace(_ sftp: OpaquePointer, _ temporary: String, as remote: String) throws(SSHError) {
    let flags = Int(LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE)
    do throws(SSHError) {
      _ = try retry("renaming \(temporary) to \(remote)") {
        libssh2_sftp_rename_ex(
          sftp, temporary, UInt32(temporary.utf8.count), remote, UInt32(remote.utf8.count), flags)
      }
    } catch {
      // Servers without the overwrite extension: remove the old file, then rename.
      _ = try? retry("removing \(remote)") { libssh2_sftp_unlink_ex(sftp, remote, UInt32(remote.utf8.count)) }
      _ = try retry("renaming \(temporary) to \(remote)") {
        libssh2_sftp_rename_ex(
          sftp, temporary, UInt32(temporary.utf8.count), remote, UInt32(remote.utf8.count), 0)
      }
    }
  }

  /// Sets the permission bits of `remote` to `mode` (the host's umask may have narrowed them).
  private func setMode(_ sftp: OpaquePointer, _ remote: String, _ mode: Int) throws(SSHError) {
    var attributes = LIBSSH2_SFTP_ATTRIBUTES()
    attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
    attributes.permissions = UInt(mode)
    _ = try retry("setting the mode of \(remote)") {
      libssh2_sftp_stat_ex(sftp, remote, UInt32(remote.utf8.count), LIBSSH2_SFTP_SETSTAT, &attributes)
    }
  }
}

/// Runs `body` for many targets (hosts, capture sides) at once, one thread each (libssh2 calls block their thread,
/// never the Swift cooperative pool). Results come back in the order of `targets`.
public enum ParallelHosts {
  final class Results<T>: @unchecked Sendable {
    var results: [T?]
    let lock = NSLock()
    init(_ count: Int) { results = Array(repeating: nil, count: count) }
  }

  public static func map<Item: Sendable, T: Sendable>(
    _ targets: [Item], _ body: @escaping @Sendable (Item) -> T
  ) -> [T] {
    let box = Results<T>(targets.count)
    let group = DispatchGroup()
    for (index, target) in targets.enumerated() {
      group.enter()
      let thread = Thread {
        let result = body(target)
        box.lock.withLock { box.results[index] = result }
        group.leave()
      }
      thread.stackSize = 1 << 20
      thread.start()
    }
    group.wait()
    // Every thread stored its result before leaving the group.
    return box.results.compactMap { $0 }
  }
}

/// The writing and hashing half of a download, on its own thread: it writes each buffer
/// the reading thread hands over at its offset, and hashes the file in order as it becomes
/// contiguous (straight from the buffer when it is next in line, else from the file: a
/// resumed prefix is streamed 1 MiB at a time). Four 4 MiB buffers circulate (two more per
/// extra reader), so memory stays at 16-24 MiB whatever the file's size, and no byte is
/// copied on the way from libssh2 to the file. Written ranges need not arrive in order
/// (`islands`): with several readers, a note beside the file (`PartialDownload`) says how
/// many bytes from the start are whole, should smcpair be killed with holes in the file.
final class DownloadSink: @unchecked Sendable {
  static let bufferSize = 4 << 20
  /// A read is given at least this much room: libssh2 1.10 keeps 4x the room in requests in
  /// flight, up to 8 MiB.
  static let minimumRead = 2 << 20
  private let condition = NSCondition()
  private var free: [UnsafeMutableRawBufferPointer] = []
  private var queue: [(buffer: UnsafeMutableRawBufferPointer, count: Int, offset: Int64)] = []
  private var all: [UnsafeMutableRawBufferPointer] = []
  private var finished = false
  private var done = false
  private var failure: String?
  private var hex: String?
  private let fd: Int32
  private let path: String
  /// Bytes from the start of the file that are written without a gap.
  private var contiguous: Int64
  /// Written ranges beyond `contiguous` (none while one reader fetches in order).
  private var islands: [(Int64, Int64)] = []
  /// The note of whole bytes (several readers only; -1 without).
  private let noteFd: Int32
  private let notePath: String

  init(fd: Int32, path: String, resumedFrom: Int64, readers: Int = 1) {
    self.fd = fd
    self.path = path
    contiguous = resumedFrom
    notePath = PartialDownload.notePath(path)
    noteFd = readers > 1 ? open(notePath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) : -1
    PartialDownload.write(noteFd, resumedFrom)
    for _ in 0..<(4 + 2 * max(0, readers - 1)) {
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: DownloadSink.bufferSize, alignment: 64)
      all.append(buffer)
      free.append(buffer)
    }
    let thread = Thread { [self] in self.work() }
    thread.name = "smcpair-download"
    thread.stackSize = 1 << 20
    thread.start()
  }

  deinit {
    for buffer in all { buffer.deallocate() }
    if noteFd >= 0 { Glibc.close(noteFd) }
  }

  /// After `finish`: cuts the file after its whole prefix (nothing beyond a gap is kept, so a
  /// resumed download never trusts a hole) and removes the note.
  func keepContiguous() {
    let whole = contiguousBytes
    var info = stat()
    if fstat(fd, &info) == 0 && Int64(info.st_size) > whole { ftruncate(fd, off_t(whole)) }
    if noteFd >= 0 { unlink(notePath) }
  }

  /// True when the note of whole bytes is kept (the file may then be written out of order).
  var keepsNote: Bool { noteFd >= 0 }

  var contiguousBytes: Int64 { condition.withLock { contiguous } }

  /// An empty buffer (waits for one when the writer is behind).
  func take() throws(SSHError) -> UnsafeMutableRawBufferPointer {
    condition.lock()
    defer { condition.unlock() }
    while free.isEmpty && failure == nil { condition.wait() }
    if let failure { throw SSHError(.transfer, host: "workstation", failure) }
    return free.removeLast()
  }

  /// Hands `count` bytes of `buffer` (from `take`), which belong at `offset` in the file, to
  /// the writer; the buffer comes back through `take` once written.
  func submit(_ buffer: UnsafeMutableRawBufferPointer, count: Int, at offset: Int64) throws(SSHError) {
    condition.lock()
    defer { condition.unlock() }
    queue.append((buffer, count, offset))
    condition.broadcast()
    if let failure { throw SSHError(.transfer, host: "workstation", failure) }
  }

  /// The SHA-256 of the whole file, once `finish` has run and everything is contiguous.
  func digest() throws(SSHError) -> String {
    guard let digest = finish() else {
      throw SSHError(.transfer, host: "workstation", failure ?? "the download was not written")
    }
    return digest
  }

  /// Waits until everything handed over is written (also on the error paths, so that a
  /// resumed download finds every byte that arrived); the digest of the contiguous bytes,
  /// nil after a write error. Safe to repeat.
  @discardableResult
  func finish() -> String? {
    condition.lock()
    defer { condition.unlock() }
    finished = true
    condition.broadcast()
    while !done { condition.wait() }
    return failure == nil ? hex : nil
  }

  /// Writes `count` bytes of `buffer` at `offset` in the file; the bytes written, fewer after
  /// a failure (which `fail` records).
  private func write(_ buffer: UnsafeMutableRawBufferPointer, count: Int, at offset: Int64) -> Int {
    var written = 0
    while written < count {
      let n: Int
      do {
        n = try retryingInterrupts {
          pwrite(
            fd, UnsafeRawBufferPointer(rebasing: buffer[written..<count]).baseAddress, count - written,
            off_t(offset) + off_t(written))
        }
      } catch {
        fail("writing \(path) failed: \(error)")
        return written
      }
      // A write that takes nothing of a non-empty rest makes no progress: stop as a failure.
      guard n > 0 else {
        fail("writing \(path) failed: \(Errno.ioError)")
        return written
      }
      written += n
    }
    return written
  }

  private func work() {
    var hasher = SHA256()
    var hashed: Int64 = 0
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    defer { chunk.deallocate() }
    /// Hashes `[hashed, target)` from the file (written already).
    func hash(upTo target: Int64) {
      while hashed < target {
        let n: Int
        do {
          n = try retryingInterrupts {
            pread(fd, chunk.baseAddress, min(chunk.count, Int(target - hashed)), off_t(hashed))
          }
        } catch {
          fail("cannot read \(path) back: \(error)")
          return
        }
        guard n > 0 else {
          fail("cannot read \(path) back: it got shorter")
          return
        }
        hasher.update(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
        hashed += Int64(n)
      }
    }
    // The resumed prefix, streamed: a partial file of any size costs 1 MiB here.
    hash(upTo: condition.withLock { contiguous })
    while true {
      condition.lock()
      while queue.isEmpty && !finished { condition.wait() }
      if queue.isEmpty {
        let target = contiguous
        condition.unlock()
        hash(upTo: target)
        condition.lock()
        if failure == nil { hex = hasher.finalizeHex() }
        done = true
        condition.broadcast()
        condition.unlock()
        return
      }
      let (buffer, count, offset) = queue.removeFirst()
      let failed = failure != nil
      condition.unlock()
      var written = 0
      if !failed {
        written = write(buffer, count: count, at: offset)
        // Next in line: hash it from the buffer, before the buffer is reused.
        if offset == hashed && written > 0 {
          hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<written]))
          hashed += Int64(written)
        }
      }
      condition.lock()
      free.append(buffer)
      let before = contiguous
      if written > 0 { mark(offset, offset + Int64(written)) }
      let target = contiguous
      condition.broadcast()
      condition.unlock()
      // Written after the data it counts: the note never claims a byte not in the file.
      if target != before { PartialDownload.write(noteFd, target) }
      hash(upTo: target)
    }
  }

  /// Records `[start, end)` as written (under the lock).
  private func mark(_ start: Int64, _ end: Int64) {
    islands.append((start, end))
    var grew = true
    while grew {
      grew = false
      for (index, island) in islands.enumerated() where island.0 <= contiguous {
        contiguous = max(contiguous, island.1)
        islands.remove(at: index)
        grew = true
        break
      }
    }
  }

  private func fail(_ message: String) {
    condition.lock()
    if failure == nil { failure = message }
    condition.broadcast()
    condition.unlock()
  }
}

/// `sha256sum` of a remote file on its own channel, read without blocking the transfer.
final class RemoteDigest {
  let session: SSHSession
  let channel: OpaquePointer
  let path: String
  private var output: [UInt8] = []
  private var received = 0
  private var overflowed = false
  private var done = false
  static let maximumOutput = 64 << 10

  init(session: SSHSession, path: String) throws(SSHError) {
    self.session = session
    self.path = path
    channel = try session.openChannel("opening a channel for sha256sum")
    let command = SSHSession.sha256Command(path)
    do throws(SSHError) {
      _ = try session.retry("starting sha256sum") {
        libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count))
      }
      _ = try session.retry("closing stdin") { libssh2_channel_send_eof(channel) }
    } catch {
      libssh2_channel_free(channel)
      throw error
    }
  }

  deinit { if !session.broken && !session.isClosed { libssh2_channel_free(channel) } }

  /// Reads whatever output is there, without waiting. sha256sum prints one line: more than
  /// 64 KiB on either stream (a host that answers every command with endless output) ends
  /// the command.
  func poll() {
    guard !done else { return }
    var buffer = [UInt8](repeating: 0, count: 4096)
    for stream: Int32 in [0, 1] {
      while true {
        let n = buffer.withUnsafeMutableBytes {
          libssh2_channel_read_ex(channel, stream, $0.baseAddress, $0.count)
        }
        guard n > 0 else { break }
        received += n
        if received > RemoteDigest.maximumOutput {
          session.abandon(channel)
          overflowed = true
          done = true
          return
        }
        // stderr is only drained, so the channel never stalls.
        if stream == 0 { output += buffer[0..<n] }
      }
    }
    if libssh2_channel_eof(channel) != 0 { done = true }
  }

  /// Waits for sha256sum to finish (up to the inactivity timeout after the transfer) and
  /// returns its digest.
  func result() throws(SSHError) -> String {
    let deadline = Date().addingTimeInterval(session.options.inactivityTimeout)
    while !done {
      poll()
      if !done { try session.waitForSocket("waiting for sha256sum of \(path)", deadline: deadline) }
    }
    if overflowed {
      throw SSHError(
        .outputLimit, host: session.label,
        "checksumming \(path) on the host (sha256sum): the host sent more than \(CommandLimits.describe(RemoteDigest.maximumOutput)) of output; the channel was closed. Is a ForceCommand or a login script printing on every command?"
      )
    }
    _ = try? session.retry("closing the channel") { libssh2_channel_close(channel) }
    _ = try? session.retry("closing the channel") { libssh2_channel_wait_closed(channel) }
    let text = String(decoding: output, as: UTF8.self)
    guard libssh2_channel_get_exit_status(channel) == 0, let digest = RemoteReplies.sha256(text) else {
      throw SSHError(
        .checksum, host: session.label, "cannot checksum \(path) on the host (sha256sum: \(text.prefix(600)))"
      )
    }
    return digest
  }
}
