import CFileSafety
import Support

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A whole file mapped read-only into memory; the mapping lives as long as this object.
///
/// Packets handed out by readers point into the mapping, so no packet is ever copied.
///
/// Only regular files are mapped: a FIFO, pipe or device would block or never end, so it is
/// refused (after `open` with `O_NONBLOCK`, by `fstat`) before anything is read. A file that
/// shrinks while it is mapped cannot kill the process: the mapping is registered with the
/// SIGBUS guard of `CFileSafety`, which puts zeros where the file vanished, and readers ask
/// `currentSize()` (one `fstat`) every MiB and when something looks damaged, so that the
/// shrink is reported as truncation at a byte offset.
public final class MappedFile: @unchecked Sendable {
  // releasedUpTo is only touched by the single reader that owns this mapping.
  public let path: String
  public let bytes: UnsafeRawBufferPointer
  private let base: UnsafeMutableRawPointer?
  private let length: Int
  private let fd: Int32
  private let guardSlot: Int32

  public init(path: String) throws(CaptureFileError) {
    self.path = path
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if fd < 0 {
      let err = errno
      throw CaptureFileError(
        .io, "cannot open: \(Errno(rawValue: err)); check the path and permissions",
        path: path, systemError: err)
    }
    var info = stat()
    if fstat(fd, &info) != 0 {
      let err = errno
      close(fd)
      throw CaptureFileError(
        .io, "cannot open: fstat failed: \(Errno(rawValue: err))", path: path, systemError: err)
    }
    let kind = info.st_mode & S_IFMT
    if kind != S_IFREG {
      close(fd)
      let what =
        switch kind {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a pipe or FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
      throw CaptureFileError(
        .io,
        "cannot open: is \(what), not a regular capture file; save the capture to a file first (for example tcpdump -w FILE, or cat PIPE > FILE) and give that file",
        path: path, systemError: kind == S_IFDIR ? EISDIR : EINVAL)
    }
    self.fd = fd
    let size = Int(info.st_size)
    length = size
    if size == 0 {
      base = nil
      bytes = UnsafeRawBufferPointer(start: nil, count: 0)
      guardSlot = -1
      return
    }
    guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
      let err = errno
      close(fd)
      throw CaptureFileError(
        .io, "cannot map into memory: \(Errno(rawValue: err))", path: path, systemError: err)
    }
    _ = madvise(mapped, size, MADV_SEQUENTIAL)
    base = mapped
    bytes = UnsafeRawBufferPointer(start: mapped, count: size)
    guardSlot = smcpair_mapping_register(mapped, size)
  }

  /// The file's size now (`fstat`), at most the mapped length; the mapped length if the
  /// file cannot be asked. Smaller than `bytes.count` when the file was cut while mapped.
  public func currentSize() -> Int {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return length }
    return min(length, Int(info.st_size))
  }

  /// Whether a touch of the mapping found the file gone underneath (zeros were read).
  public var readVanishedBytes: Bool { smcpair_mapping_faulted(guardSlot) != 0 }

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

  /// Drops the resident pages of bytes `start..<end` (whole pages inside it), whatever was
  /// released before: for a consumer that reads behind the reader and faults pages back in.
  /// Keeps no state, so it may run on another thread than `releasePages(before:)`.
  public func releasePages(from start: Int, to end: Int) {
    guard let base else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let first = (max(start, 0) + page - 1) / page * page
    let last = min(end, length) / page * page
    guard last > first else { return }
    _ = madvise(base + first, last - first, MADV_DONTNEED)
  }

  deinit {
    if let base {
      smcpair_mapping_unregister(guardSlot)
      munmap(base, length)
    }
    close(fd)
  }
}
