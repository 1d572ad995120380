import CaptureFiles
import Foundation
import SMCWire

/// What a windowed walk decided about one packet, written per side in frame order so the
/// merge can annotate packets without pairing again.
public struct LoggedNote: Sendable, Equatable {
  /// 1-based pair number; 0 when the packet is not paired.
  public var pairNumber: UInt32 = 0
  /// Index into `PairLogs.sources` of the packet's source address; `noSource` when its frame
  /// could not be decoded.
  public var sourceID: UInt16 = LoggedNote.noSource
  /// `PairKind.allCases` index.
  public var kind: UInt8 = 0
  /// The copy's time on the other side's clock (when paired).
  public var partnerTime: Int64 = 0

  public static let noSource = UInt16.max
  static let size = 16
}

/// The two per-side note files of a windowed walk and the source addresses they refer to.
public struct PairLogs: Sendable {
  public var paths: PerSide<String>
  public var sources: [IPAddress]
  /// Every pair with both times, when the walk was asked to keep them.
  public var pairs: PairTimes?

  /// Deletes the files.
  public func remove() {
    for path in [paths.client, paths.server] + (pairs.map { [$0.path] } ?? []) {
      try? FileManager.default.removeItem(atPath: path)
      TemporaryFiles.forget(path)
    }
  }
}

/// A temporary pairing file (0600, removed on a signal) appended through a 1 MiB buffer.
final class PairingFile {
  let path: String
  private let handle: FileHandle
  private var buffer: [UInt8] = []

  init(path: String) throws(CaptureFileError) {
    self.path = path
    TemporaryFiles.register(path)
    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
      let handle = FileHandle(forWritingAtPath: path)
    else {
      throw CaptureFileError(
        .io, "cannot create a temporary pairing file; check the output folder", path: path)
    }
    self.handle = handle
    buffer.reserveCapacity(1 << 20)
  }

  /// Appends the bytes of `record` (a tuple of little-endian integers).
  func append<Record>(_ record: Record) throws(CaptureFileError) {
    withUnsafeBytes(of: record) { buffer.append(contentsOf: $0) }
    if buffer.count >= 1 << 20 { try flush() }
  }

  func flush() throws(CaptureFileError) {
    guard !buffer.isEmpty else { return }
    do {
      try handle.write(contentsOf: buffer)
    } catch {
      throw CaptureFileError(.io, "cannot write a temporary pairing file: \(error)", path: path)
    }
    buffer.removeAll(keepingCapacity: true)
  }

  func close() throws(CaptureFileError) {
    try flush()
    try? handle.close()
  }
}

/// Appends notes to a file through a buffer.
final class PairLogWriter {
  private let file: PairingFile
  var path: String { file.path }

  init(path: String) throws(CaptureFileError) { file = try PairingFile(path: path) }

  func append(_ note: LoggedNote) throws(CaptureFileError) {
    let head = UInt64(note.pairNumber) | UInt64(note.sourceID) << 32 | UInt64(note.kind) << 48
    try file.append((head.littleEndian, note.partnerTime.littleEndian))
  }

  func close() throws(CaptureFileError) { try file.close() }
}

/// Reads a note file written by `PairLogWriter`, front to back, keeping memory flat.
public final class PairLogReader {
  private let file: MappedFile
  private var offset = 0

  public init(path: String) throws(CaptureFileError) { file = try MappedFile(path: path) }

  public var count: Int { file.bytes.count / LoggedNote.size }

  /// The note of `frame` (1-based), read in place; nil past the end. Pages far behind the
  /// furthest frame asked for are let go, so a reader that moves forward (time order is
  /// nearly frame order) keeps memory flat; going back only reads them again.
  public func note(frame: Int) -> LoggedNote? {
    let at = (frame - 1) * LoggedNote.size
    guard frame >= 1, at + LoggedNote.size <= file.bytes.count else { return nil }
    if at > furthest {
      furthest = at
      if furthest - released >= 1 << 22 {
        released = furthest - (1 << 21)
        file.releasePages(before: released)
      }
    }
    return read(at: at)
  }

  private var furthest = 0
  private var released = 0

  private func read(at offset: Int) -> LoggedNote {
    let bytes = file.bytes
    return LoggedNote(
      pairNumber: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
      sourceID: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)),
      kind: bytes[offset + 6],
      partnerTime: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: Int64.self)))
  }

  public func next() -> LoggedNote? {
    guard offset + LoggedNote.size <= file.bytes.count else { return nil }
    let note = read(at: offset)
    offset += LoggedNote.size
    if offset & ((1 << 22) - 1) == 0 { file.releasePages(before: offset) }
    return note
  }
}

/// Notes of the frames of one side that the walk has read, kept until every older frame is
/// settled (paired, given up on, or not pairable), then handed on in frame order.
struct SettlingNotes {
  private var notes: [LoggedNote] = []
  private var waiting: [Bool] = []
  private var head = 0
  /// Frame number of `notes[0]`.
  private var base = 1

  /// Frames may come out of file order (the walk reads in time order): a frame not yet seen
  /// holds a waiting placeholder, so notes still leave in frame order.
  mutating func append(frame: Int, note: LoggedNote, waiting isWaiting: Bool) {
    if notes.count == head {
      notes.removeAll(keepingCapacity: true)
      waiting.removeAll(keepingCapacity: true)
      base += head
      head = 0
    }
    let index = frame - base
    guard index >= head else { return }
    while notes.count <= index {
      notes.append(LoggedNote())
      waiting.append(true)
    }
    notes[index] = note
    waiting[index] = isWaiting
  }

  mutating func settle(frame: Int, pairNumber: Int, partnerTime: Int64) {
    let index = frame - base
    guard index >= head && index < notes.count else { return }
    waiting[index] = false
    notes[index].pairNumber = UInt32(truncatingIfNeeded: pairNumber)
    notes[index].partnerTime = partnerTime
  }

  /// Removes and returns the oldest note when it is settled.
  mutating func popSettled() -> LoggedNote? {
    guard head < notes.count, !waiting[head] else { return nil }
    let note = notes[head]
    head += 1
    if head >= 4096 && head * 2 >= notes.count {
      notes.removeFirst(head)
      waiting.removeFirst(head)
      base += head
      head = 0
    }
    return note
  }
}
