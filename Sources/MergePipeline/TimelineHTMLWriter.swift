import Alignment
import CaptureFiles
import Rendering
import Support

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One paired message as `timeline.html` shows it; both times on the reference clock.
public struct TimelineHTMLEvent: Sendable {
  public var sendNanoseconds: Int64
  public var receiveNanoseconds: Int64
  public var kind: PairKind
  public var clientToServer: Bool
  /// The connection's key text (`ConnectionKey.description`): one lane per distinct text.
  public var connection: String
  public var clientFrame: Int
  public var serverFrame: Int
  public var delayNanoseconds: Int64
  /// Half the width of the delay's bounds; nil when the clock model has none.
  public var delayUncertaintyNanoseconds: Int64?
  /// What the arrow says (e.g. `SYN, ACK Seq=0`, `CDC #5 prod 0:1200`).
  public var label: String

  public init(
    sendNanoseconds: Int64, receiveNanoseconds: Int64, kind: PairKind, clientToServer: Bool,
    connection: String, clientFrame: Int, serverFrame: Int, delayNanoseconds: Int64,
    delayUncertaintyNanoseconds: Int64?, label: String
  ) {
    self.sendNanoseconds = sendNanoseconds
    self.receiveNanoseconds = receiveNanoseconds
    self.kind = kind
    self.clientToServer = clientToServer
    self.connection = connection
    self.clientFrame = clientFrame
    self.serverFrame = serverFrame
    self.delayNanoseconds = delayNanoseconds
    self.delayUncertaintyNanoseconds = delayUncertaintyNanoseconds
    self.label = label
  }
}

/// The clock model and verdict the page shows in its header.
public struct TimelineHTMLClock: Sendable {
  public var offsetNanoseconds: Double
  public var offsetLowerNanoseconds: Double
  public var offsetUpperNanoseconds: Double
  public var skewPPM: Double
  public var verdict: String

  public init(
    offsetNanoseconds: Double, offsetLowerNanoseconds: Double, offsetUpperNanoseconds: Double,
    skewPPM: Double,
    verdict: String
  ) {
    self.offsetNanoseconds = offsetNanoseconds
    self.offsetLowerNanoseconds = offsetLowerNanoseconds
    self.offsetUpperNanoseconds = offsetUpperNanoseconds
    self.skewPPM = skewPPM
    self.verdict = verdict
  }
}

/// Writes `timeline.html` while the paired events come, in any order: the page's head first,
/// then the events in chunks of `chunkEvents` (a columnar binary table, deflated, in base64:
/// docs/formats.md), then the findings, clock model and the page's program at `finish`.
/// Memory holds one chunk and the connection names, never the whole capture.
public final class TimelineHTMLWriter {
  /// Events per chunk: large enough that per-chunk costs vanish, small enough to stay a few MiB.
  public static let chunkEvents = 65_536

  private enum Output {
    case file(StagedFile, FileDescriptor)
    case memory
  }

  private var output: Output
  private var bytes: [UInt8] = []
  private var chunk = EventChunk()
  private var connectionIndex: [String: Int] = [:]
  private var connections: [String] = []
  /// Events appended so far.
  public private(set) var eventCount = 0

  /// A writer of the page at `path` (staged: the final name appears at `finish`).
  public init(path: String) throws(CaptureFileError) {
    let staged = StagedFile(finalPath: path)
    let fd = open(staged.temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw CaptureFileError(.io, "cannot create (\(staged.temporaryPath)): \(Errno.current)", path: path)
    }
    output = .file(staged, FileDescriptor(rawValue: fd))
    try emit(TimelineHTML.head)
  }

  /// A writer that keeps the page in memory (`finishedPage()`): for small timelines and tests.
  public init() {
    output = .memory
    bytes.append(contentsOf: TimelineHTML.head.utf8)
  }

  deinit {
    if case .file(_, let fd) = output { close(fd.rawValue) }
  }

  /// Adds one paired event; a full chunk goes out to the file.
  public func append(_ event: TimelineHTMLEvent) throws(CaptureFileError) {
    let connection =
      connectionIndex[event.connection]
      ?? {
        connections.append(event.connection)
        connectionIndex[event.connection] = connections.count - 1
        return connections.count - 1
      }()
    chunk.append(event, connection: connection)
    eventCount += 1
    if chunk.count >= Self.chunkEvents { try flushChunk() }
  }

  /// Writes the last chunk, the findings, the clock model and the page's program, and puts the
  /// file in place.
  public func finish(findings: [Finding], clock: TimelineHTMLClock?, clientName: String, serverName: String)
    throws(CaptureFileError)
  {
    try flushChunk()
    try emit(
      TimelineHTML.ending(
        metadata: metadata(findings: findings, clock: clock, clientName: clientName, serverName: serverName)))
    if case .file(let staged, let fd) = output {
      output = .memory
      close(fd.rawValue)
      try staged.commit()
    }
  }

  /// The page written by a memory writer, after `finish`.
  public func finishedPage() -> String { String(decoding: bytes, as: UTF8.self) }

  private func flushChunk() throws(CaptureFileError) {
    guard chunk.count > 0 else { return }
    let columns = chunk.columns()
    try emit(TimelineHTML.chunkOpening(base: chunk.base, count: chunk.count, bytes: columns.count))
    try emit(bytes: Base64.encode(FixedHuffmanDeflate.compress(columns)))
    try emit(TimelineHTML.chunkClosing)
    chunk.removeAll()
  }

  private func emit(_ text: String) throws(CaptureFileError) { try emit(bytes: Array(text.utf8)) }

  private func emit(bytes more: [UInt8]) throws(CaptureFileError) {
    switch output {
    case .memory:
      bytes.append(contentsOf: more)
    case .file(let staged, let fd):
      do {
        try fd.writeAll(more)
      } catch {
        throw CaptureFileError(
          error.rawValue == ENOSPC ? .diskFull : .io, "cannot write (\(staged.temporaryPath)): \(error)",
          path: staged.finalPath, systemError: error.rawValue)
      }
    }
  }

  /// The page's JSON object: names, connections, findings (times as decimal text: nanoseconds
  /// since the epoch do not fit a JavaScript number), clock model.
  private func metadata(
    findings: [Finding], clock: TimelineHTMLClock?, clientName: String, serverName: String
  )
    -> String
  {
    let quote = TimelineHTML.jsonString
    let findingObjects = findings.map { finding in
      let time = finding.timeNanoseconds.map { "\"\($0)\"" } ?? "null"
      return
        "{\"kind\":\(quote(finding.kind.rawValue)),\"side\":\(quote(finding.side.name)),\"time_ns\":\(time),"
        + "\"connection\":\(quote(finding.connection)),\"lane\":\(lane(of: finding.connection)),"
        + "\"message\":\(quote(finding.message))}"
    }
    let model =
      clock.map {
        "{\"offset_ns\":\(Self.number($0.offsetNanoseconds)),\"lower_ns\":\(Self.number($0.offsetLowerNanoseconds)),"
          + "\"upper_ns\":\(Self.number($0.offsetUpperNanoseconds)),\"skew_ppm\":\(Self.number($0.skewPPM)),"
          + "\"verdict\":\(quote($0.verdict))}"
      } ?? "null"
    return
      "{\"version\":1,\"events\":\(eventCount),\"client\":\(quote(clientName)),\"server\":\(quote(serverName)),"
      + "\"kinds\":[\"tcp\",\"clc\",\"cdc\",\"data\"],"
      + "\"connections\":[\(connections.map(quote).joined(separator: ","))],"
      + "\"findings\":[\(findingObjects.joined(separator: ","))],\"model\":\(model)}"
  }

  /// The lane of a finding's connection: its key text, or a flow text `a -> b` of the same
  /// two endpoints (either order, as a connection key orders them by address); -1 when none.
  private func lane(of connection: String) -> Int {
    if let index = connectionIndex[connection] { return index }
    let ends = connection.split(separator: " -> ", omittingEmptySubsequences: false)
    guard ends.count == 2 else { return -1 }
    return connectionIndex["\(ends[0]) <-> \(ends[1])"] ?? connectionIndex["\(ends[1]) <-> \(ends[0])"] ?? -1
  }

  private static func number(_ v: Double) -> String {
    guard v.isFinite else { return "null" }
    return String((v * 10).rounded() / 10)
  }
}

/// One chunk's columns, kept until the chunk is written (layout in docs/formats.md). Times and
/// frames are stored as differences, which repeat, so that the chunk compresses well.
struct EventChunk {
  private(set) var count = 0
  /// The first event's send time: the chunk's times count from it.
  private(set) var base: Int64 = 0
  private var previousSend: Int64 = 0
  private var previousClientFrame: UInt32 = 0
  private var sendStep: [Double] = []
  private var receiveAfterSend: [Double] = []
  private var delayCorrection: [Double] = []
  private var uncertainty: [Float] = []
  private var lane: [UInt32] = []
  private var clientFrameStep: [UInt32] = []
  private var serverFrameAfterClient: [UInt32] = []
  private var labelLength: [UInt32] = []
  private var kind: [UInt8] = []
  private var labels: [UInt8] = []

  mutating func append(_ event: TimelineHTMLEvent, connection: Int) {
    if count == 0 {
      base = event.sendNanoseconds
      previousSend = base
      previousClientFrame = 0
    }
    count += 1
    let flight = event.receiveNanoseconds &- event.sendNanoseconds
    sendStep.append(Double(event.sendNanoseconds &- previousSend))
    receiveAfterSend.append(Double(flight))
    delayCorrection.append(Double(event.delayNanoseconds &- flight))
    previousSend = event.sendNanoseconds
    uncertainty.append(event.delayUncertaintyNanoseconds.map(Float.init) ?? .nan)
    lane.append(UInt32(clamping: connection))
    let clientFrame = UInt32(clamping: event.clientFrame)
    clientFrameStep.append(clientFrame &- previousClientFrame)
    serverFrameAfterClient.append(UInt32(clamping: event.serverFrame) &- clientFrame)
    previousClientFrame = clientFrame
    let before = labels.count
    labels.append(contentsOf: event.label.utf8)
    labelLength.append(UInt32(clamping: labels.count - before))
    kind.append(UInt8(truncatingIfNeeded: event.kind.index) | (event.clientToServer ? 0x80 : 0))
  }

  mutating func removeAll() {
    count = 0
    sendStep.removeAll(keepingCapacity: true)
    receiveAfterSend.removeAll(keepingCapacity: true)
    delayCorrection.removeAll(keepingCapacity: true)
    uncertainty.removeAll(keepingCapacity: true)
    lane.removeAll(keepingCapacity: true)
    clientFrameStep.removeAll(keepingCapacity: true)
    serverFrameAfterClient.removeAll(keepingCapacity: true)
    labelLength.removeAll(keepingCapacity: true)
    kind.removeAll(keepingCapacity: true)
    labels.removeAll(keepingCapacity: true)
  }

  /// The columns, little-endian, widest first (so every column is aligned to its width).
  func columns() -> [UInt8] {
    var raw: [UInt8] = []
    raw.reserveCapacity(count * 41 + labels.count)
    for column in [sendStep, receiveAfterSend, delayCorrection] {
      for v in column { Self.put(v.bitPattern, into: &raw) }
    }
    for v in uncertainty { Self.put(v.bitPattern, into: &raw) }
    for column in [lane, clientFrameStep, serverFrameAfterClient, labelLength] {
      for v in column { Self.put(v, into: &raw) }
    }
    raw.append(contentsOf: kind)
    raw.append(contentsOf: labels)
    return raw
  }

  private static func put<T: FixedWidthInteger>(_ value: T, into raw: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { raw.append(contentsOf: $0) }
  }
}

/// Standard base64 with padding (RFC 4648 §4), as the page's `Uint8Array.fromBase64` reads it.
enum Base64 {
  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  static func encode(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4)
    bytes.withUnsafeBufferPointer { input in
      out.withUnsafeMutableBufferPointer { output in
        alphabet.withUnsafeBufferPointer { table in
          var i = 0
          var o = 0
          while i + 3 <= input.count {
            let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            output[o] = table[Int(v >> 18)]
            output[o + 1] = table[Int(v >> 12 & 63)]
            output[o + 2] = table[Int(v >> 6 & 63)]
            output[o + 3] = table[Int(v & 63)]
            i += 3
            o += 4
          }
          let rest = input.count - i
          if rest > 0 {
            let v = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
            output[o] = table[Int(v >> 18)]
            output[o + 1] = table[Int(v >> 12 & 63)]
            output[o + 2] = rest == 2 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "=")
            output[o + 3] = UInt8(ascii: "=")
          }
        }
      }
    }
    return out
  }
}
