#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A whole file mapped read-only into memory; the mapping lives as long as this object.
///
/// Packets handed out by readers point into the mapping, so no packet is ever copied.
public final class MappedFile: @unchecked Sendable {
  // releasedUpTo is only touched by the single reader that owns this mapping.
  public let path: String
  public let bytes: UnsafeRawBufferPointer
  private let base: UnsafeMutableRawPointer?
  private let length: Int

  public init(path: String) throws(CaptureFileError) {
    self.path = path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      let err = errno
      throw CaptureFileError(
        .io, "cannot open: \(String(cString: strerror(err))); check the path and permissions",
        path: path, systemError: err)
    }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) != 0 {
      let err = errno
      throw CaptureFileError(
        .io, "cannot stat: \(String(cString: strerror(err)))", path: path, systemError: err)
    }
    if (info.st_mode & S_IFMT) == S_IFDIR {
      throw CaptureFileError(.io, "is a directory, not a capture file", path: path, systemError: EISDIR)
    }
    let size = Int(info.st_size)
    length = size
    if size == 0 {
      base = nil
      bytes = UnsafeRawBufferPointer(start: nil, count: 0)
      return
    }
    guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
      let err = errno
      throw CaptureFileError(
        .io, "cannot map into memory: \(String(cString: strerror(err)))", path: path, systemError: err)
    }
    _ = madvise(mapped, size, MADV_SEQUENTIAL)
    base = mapped
    bytes = UnsafeRawBufferPointer(start: mapped, count: size)
  }

  /// Drops the resident pages of `[0, offset)` (rounded down to a page). The mapping stays
  /// valid: touching those bytes again re-reads them from the file. Readers call this as they
  /// stream, so memory stays flat however large the file is.
  public func releasePages(before offset: Int) {
    guard let base, offset > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let end = min(offset, length) / page * page
    guard end > releasedUpTo else { return }
    _ = madvise(base + releasedUpTo, end - releasedUpTo, MADV_DONTNEED)
    releasedUpTo = end
  }

  private var releasedUpTo = 0

  deinit {
    if let base { munmap(base, length) }
  }
}
