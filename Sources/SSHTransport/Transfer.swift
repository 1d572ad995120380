import CLibSSH2
import Checksum
import Foundation

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

  /// The remote file's SHA-256 (`sha256sum` on the host).
  public func remoteSHA256(_ path: String) throws(SSHError) -> String {
    let output = try run(
      RemoteCommand.join(["sha256sum", "--", path]), purpose: "checksumming \(path) on the host (sha256sum)")
    guard output.exitStatus == 0, let digest = RemoteReplies.sha256(output.stdoutText) else {
      throw SSHError(.checksum, host: label, "cannot checksum \(path) on the host: \(output.stderrText)")
    }
    return digest
  }

  /// Downloads `remote` to `local` with pipelined SFTP reads (large reads keep many requests
  /// in flight). The data goes to `local.partial` first; an existing partial file is resumed.
  /// The SHA-256 is computed while streaming (on a second thread) and compared with
  /// `expectedSHA256`, or with the host's `sha256sum`, which runs on a second channel during
  /// the transfer. On a match the file is renamed to `local`.
  public func download(
    _ remote: String, to local: String, expectedSHA256: String? = nil, progress: TransferProgress? = nil
  ) throws(SSHError) -> TransferResult {
    let started = Date()
    let sftp = try self.sftp()
    defer { _ = try? retry("closing SFTP") { libssh2_sftp_shutdown(sftp) } }
    let total = try remoteSize(sftp, remote)
    let partial = local + ".partial"
    let hasher = BackgroundHasher()
    var offset: Int64 = 0
    var resumedFrom: Int64 = 0
    // Resume: keep what an earlier, cut transfer already wrote (if it is not longer).
    if let existing = FileManager.default.contents(atPath: partial), Int64(existing.count) <= total {
      offset = Int64(existing.count)
      resumedFrom = offset
      hasher.add(Array(existing))
    }
    let fd = open(partial, O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : O_APPEND), 0o600)
    guard fd >= 0 else {
      throw SSHError(.transfer, host: label, "cannot write \(partial): \(String(cString: strerror(errno)))")
    }
    defer { Glibc.close(fd) }
    // The host checksums its copy meanwhile, on its own channel.
    let remoteDigest = expectedSHA256 == nil ? try RemoteDigest(session: self, path: remote) : nil
    let handle = try openRemote(sftp, remote, flags: UInt(LIBSSH2_FXF_READ), mode: 0)
    defer { _ = try? retry("closing \(remote)") { libssh2_sftp_close_handle(handle) } }
    libssh2_sftp_seek64(handle, UInt64(offset))
    var buffer = [UInt8](repeating: 0, count: 2 << 20)
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    while offset < total {
      let n = buffer.withUnsafeMutableBytes { libssh2_sftp_read(handle, $0.baseAddress, $0.count) }
      if n > 0 {
        let wrote = buffer.withUnsafeBytes { write(fd, $0.baseAddress, n) }
        guard wrote == n else {
          throw SSHError(
            .transfer, host: label, "writing \(partial) failed: \(String(cString: strerror(errno)))")
        }
        hasher.add(Array(buffer[0..<n]))
        offset += Int64(n)
        deadline = Date().addingTimeInterval(options.inactivityTimeout)
        remoteDigest?.poll()
        if let progress, !progress(offset, total) {
          throw SSHError(
            .cancelled, host: label,
            "download of \(remote) cancelled at \(offset) of \(total) bytes; run it again to resume")
        }
      } else if n == 0 {
        break
      } else if Int32(n) == LibSSH2.eagain {
        remoteDigest?.poll()
        try waitForSocket("downloading \(remote)", deadline: deadline)
      } else {
        throw SSHError(
          .transfer, host: label,
          "download of \(remote) broke off at \(offset) of \(total) bytes (\(SSHSession.error(session, label, "read", Int32(n)).message)); run it again to resume"
        )
      }
    }
    guard offset == total else {
      throw SSHError(
        .transfer, host: label, "\(remote) ended at \(offset) of \(total) bytes; run it again to resume")
    }
    let digest = hasher.finish()
    let expected: String
    if let expectedSHA256 {
      expected = expectedSHA256
    } else {
      expected = try remoteDigest!.result()
    }
    try accept(partial, as: local, remote: remote, digest: digest, expected: expected)
    return TransferResult(
      bytes: total, resumedFrom: resumedFrom, sha256: digest, seconds: Date().timeIntervalSince(started))
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
        .transfer, host: label, "cannot rename \(partial) to \(local): \(String(cString: strerror(errno)))")
    }
  }

  /// Uploads `local` to `remote` with `mode`: written under a temporary name next to it and
  /// renamed when complete, so the remote path never holds a partial file.
  public func upload(_ local: String, to remote: String, mode: Int = 0o644, progress: TransferProgress? = nil)
    throws(SSHError) -> TransferResult
  {
    let started = Date()
    let fd = open(local, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw SSHError(.transfer, host: label, "cannot read \(local): \(String(cString: strerror(errno)))")
    }
    defer { Glibc.close(fd) }
    var info = stat()
    fstat(fd, &info)
    let total = Int64(info.st_size)
    let sftp = try self.sftp()
    defer { _ = try? retry("closing SFTP") { libssh2_sftp_shutdown(sftp) } }
    let directory = (remote as NSString).deletingLastPathComponent
    let temporary =
      (directory.isEmpty ? "" : directory + "/")
      + ".\((remote as NSString).lastPathComponent).smcpair-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let handle = try openRemote(
      sftp, temporary, flags: UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC), mode: mode)
    var hasher = SHA256()
    var sent: Int64 = 0
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var deadline = Date().addingTimeInterval(options.inactivityTimeout)
    do throws(SSHError) {
      while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
          throw SSHError(.transfer, host: label, "reading \(local): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        var offset = 0
        while offset < n {
          let w = buffer.withUnsafeBytes { libssh2_sftp_write(handle, $0.baseAddress! + offset, n - offset) }
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
        if let progress, !progress(sent, total) {
          throw SSHError(.cancelled, host: label, "upload of \(local) cancelled")
        }
      }
      _ = try retry("closing \(temporary)") { libssh2_sftp_close_handle(handle) }
    } catch {
      _ = try? retry("closing \(temporary)") { libssh2_sftp_close_handle(handle) }
      _ = try? retry("removing \(temporary)") {
        libssh2_sftp_unlink_ex(sftp, temporary, UInt32(temporary.utf8.count))
      }
      throw error
    }
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
    var attributes = LIBSSH2_SFTP_ATTRIBUTES()
    attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
    attributes.permissions = UInt(mode)
    _ = try retry("setting the mode of \(remote)") {
      libssh2_sftp_stat_ex(sftp, remote, UInt32(remote.utf8.count), LIBSSH2_SFTP_SETSTAT, &attributes)
    }
    return TransferResult(
      bytes: sent, resumedFrom: 0, sha256: hasher.finalizeHex(), seconds: Date().timeIntervalSince(started))
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
    return box.results.map { $0! }
  }
}

/// SHA-256 on a second thread, fed chunk by chunk (hashing overlaps the network).
final class BackgroundHasher: @unchecked Sendable {
  private let condition = NSCondition()
  private var queue: [[UInt8]] = []
  private var queuedBytes = 0
  private var finished = false
  private var digest: String?
  private var hasher = SHA256()

  init() {
    let thread = Thread { [self] in self.work() }
    thread.name = "smcpair-sha256"
    thread.start()
  }

  func add(_ chunk: [UInt8]) {
    condition.lock()
    // Bounded: at most 64 MiB waiting, so memory does not grow with the file.
    while queuedBytes > 64 << 20 { condition.wait() }
    queue.append(chunk)
    queuedBytes += chunk.count
    condition.signal()
    condition.unlock()
  }

  func finish() -> String {
    condition.lock()
    finished = true
    condition.broadcast()
    while digest == nil { condition.wait() }
    let result = digest!
    condition.unlock()
    return result
  }

  private func work() {
    while true {
      condition.lock()
      while queue.isEmpty && !finished { condition.wait() }
      if queue.isEmpty && finished {
        digest = hasher.finalizeHex()
        condition.broadcast()
        condition.unlock()
        return
      }
      let chunk = queue.removeFirst()
      queuedBytes -= chunk.count
      condition.broadcast()
      condition.unlock()
      hasher.update(chunk)
    }
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
    let command = RemoteCommand.join(["sha256sum", "--", path])
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
