import CFileSafety

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An output file that appears under its final name only when it is complete.
///
/// It is written as `.smcpair-<pid>-<name>.tmp` in the final folder, then `commit()` sets
/// mode 0600 (whatever the umask: outputs derived from captures are owner-only), syncs it,
/// renames it over the final name and syncs the folder. Until then the temporary path is
/// registered for removal on SIGINT/SIGTERM (`TemporaryFiles.installSignalCleanup`); an
/// uncommitted file is removed when the value goes away; what a SIGKILL leaves is removed
/// by the next run (`TemporaryFiles.removeStale`).
public final class StagedFile {
  public let finalPath: String
  public let temporaryPath: String
  private var done = false

  public init(finalPath: String) {
    self.finalPath = finalPath
    let slash = finalPath.lastIndex(of: "/")
    let folder = slash.map { String(finalPath[..<$0]) } ?? "."
    let name = slash.map { String(finalPath[finalPath.index(after: $0)...]) } ?? finalPath
    temporaryPath = "\(folder)/.smcpair-\(getpid())-\(name).tmp"
    TemporaryFiles.register(temporaryPath)
  }

  /// Writes `bytes` to `finalPath` through a staged file.
  public static func write(_ bytes: [UInt8], to finalPath: String) throws(CaptureFileError) {
    let staged = StagedFile(finalPath: finalPath)
    let fd = open(staged.temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw staged.failure("cannot create", errno) }
    let ok = bytes.withUnsafeBytes { raw in
      // An empty buffer may have no base address; it has nothing to write either.
      guard let base = raw.baseAddress else { return true }
      var written = 0
      while written < raw.count {
        let n = Glibc.write(fd, base + written, raw.count - written)
        if n < 0 {
          if errno == EINTR { continue }
          return false
        }
        written += n
      }
      return true
    }
    let err = errno
    close(fd)
    guard ok else { throw staged.failure("cannot write", err) }
    try staged.commit()
  }

  /// Writes `text` (UTF-8) to `finalPath` through a staged file.
  public static func write(_ text: String, to finalPath: String) throws(CaptureFileError) {
    try write(Array(text.utf8), to: finalPath)
  }

  /// Makes the temporary file the final one: 0600, synced, renamed, folder synced.
  public func commit() throws(CaptureFileError) {
    let fd = open(temporaryPath, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw failure("cannot reopen the temporary file", errno) }
    if fchmod(fd, 0o600) != 0 || fsync(fd) != 0 {
      let err = errno
      close(fd)
      throw failure("cannot sync", err)
    }
    close(fd)
    guard rename(temporaryPath, finalPath) == 0 else { throw failure("cannot rename into place", errno) }
    done = true
    TemporaryFiles.forget(temporaryPath)
    let folder = (finalPath.lastIndex(of: "/").map { String(finalPath[..<$0]) } ?? ".")
    let dirFD = open(folder.isEmpty ? "/" : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirFD >= 0 {
      _ = fsync(dirFD)
      close(dirFD)
    }
  }

  /// Removes the temporary file (nothing appears under the final name).
  public func discard() {
    guard !done else { return }
    done = true
    unlink(temporaryPath)
    TemporaryFiles.forget(temporaryPath)
  }

  private func failure(_ what: String, _ err: Int32) -> CaptureFileError {
    discard()
    return CaptureFileError(
      err == ENOSPC || err == EDQUOT ? .diskFull : .io,
      "\(what) (\(temporaryPath)): \(String(cString: strerror(err)))", path: finalPath, systemError: err)
  }

  deinit { discard() }
}

/// Temporary files of this process: removed on SIGINT/SIGTERM, and by later runs once the
/// process that wrote them is gone.
public enum TemporaryFiles {
  /// Names of our temporary files start with this; the writer's pid follows
  /// (`.smcpair-<pid>-...`, or `.smcpair-pairing-<pid>-...` for pairing notes).
  public static let prefix = ".smcpair-"

  /// Registers `path` for removal on SIGINT/SIGTERM.
  public static func register(_ path: String) { _ = smcpair_temporary_register(path) }

  /// Forgets `path` (renamed or removed).
  public static func forget(_ path: String) { smcpair_temporary_unregister_path(path) }

  /// From now on SIGINT and SIGTERM remove the registered files, then end the process as
  /// the signal would have. For commands with nothing else to do on a signal (`merge`).
  public static func installSignalCleanup() { smcpair_temporary_install_handlers() }

  /// Removes our temporary files in `folder` whose writing process is gone; returns their
  /// names. Files of live processes (another merge into the same folder) are left alone.
  @discardableResult
  public static func removeStale(in folder: String) -> [String] {
    guard let dir = opendir(folder) else { return [] }
    defer { closedir(dir) }
    var removed: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      guard name.hasPrefix(prefix) else { continue }
      var rest = name.dropFirst(prefix.count)
      if rest.hasPrefix("pairing-") { rest = rest.dropFirst("pairing-".count) }
      guard let pid = Int32(rest.prefix { $0.isASCII && $0.isNumber }), pid > 0, pid != getpid() else {
        continue
      }
      if kill(pid, 0) == 0 || errno == EPERM { continue }
      if unlink("\(folder)/\(name)") == 0 { removed.append(name) }
    }
    return removed
  }
}
