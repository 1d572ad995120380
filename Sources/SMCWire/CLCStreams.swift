import CaptureFiles

/// One CLC message taken out of a TCP stream.
public struct ReassembledCLC: Sendable {
  public var message: CLCMessage
  /// The message's bytes arrived again in a TCP retransmission: the message was already
  /// reported and must not be counted twice.
  public var retransmission: Bool
}

/// What one TCP segment contributed to the CLC stream of its direction.
struct CLCSegmentResult {
  /// Messages this segment completed (or repeated, as retransmissions).
  var messages: [ReassembledCLC] = []
  /// Payload bytes that are not CLC (data after a fallback, or a stream not followed).
  var plainBytes = 0
  /// This segment made the stream exceed `CLCStreams.bufferLimit`; the rest of the stream
  /// is not decoded.
  var overflowed = false
}

/// A CLC message still incomplete when the capture ended.
struct UnfinishedCLC {
  var message: CLCMessage
  var received: Int
  var source: Endpoint
  var destination: Endpoint
  /// The packet that carried the message's first bytes.
  var frame: Int
  var nanoseconds: Int64
  var interface: Int
}

/// Reassembles the CLC messages of every TCP direction in sequence-number order.
///
/// A direction is followed from its SYN (when the SYN carries the SMC option) or from the
/// first segment that starts with a CLC eyecatcher. Out-of-order segments wait until the
/// gap before them is filled; bytes that were already received (retransmissions) are not
/// decoded again, but a retransmission that carries a whole message already reported is
/// returned as that message marked `retransmission`. The CLC phase of a direction ends at
/// the first bytes that are not a CLC header (data after a fallback). Each direction holds
/// at most `bufferLimit` bytes; a direction that needs more is dropped and reported.
struct CLCStreams {
  /// Bytes a direction may hold: the unfinished message plus out-of-order segments.
  static let bufferLimit = 65_536

  private var streams: [DirectedKey: CLCStream] = [:]

  struct DirectedKey: Hashable {
    var source: Endpoint
    var destination: Endpoint
  }

  /// Feeds one TCP segment; `frameNumber`, `time` and `interface` locate it.
  mutating func receive(_ frame: Frame, frameNumber: Int, time: Int64, interface: Int) -> CLCSegmentResult {
    guard let tcp = frame.tcp else { return CLCSegmentResult() }
    let key = DirectedKey(source: frame.sourceEndpoint, destination: frame.destinationEndpoint)
    if tcp.flags.contains(.syn) {
      if tcp.smcOption && streams[key] == nil {
        streams[key] = CLCStream(next: tcp.sequence &+ 1)
      }
      return CLCSegmentResult()
    }
    let payload = frame.payload
    guard !payload.isEmpty else { return CLCSegmentResult() }
    if streams[key] == nil {
      guard CLCMessage.looksLikeCLC(payload) else {
        return CLCSegmentResult(plainBytes: frame.wirePayloadLength)
      }
      streams[key] = CLCStream(next: tcp.sequence)
    }
    let whole = payload.count >= frame.wirePayloadLength
    return streams[key, default: CLCStream(next: nil)].receive(
      sequence: tcp.sequence, payload, whole: whole,
      origin: .init(frame: frameNumber, nanoseconds: time, interface: interface))
  }

  /// Messages whose first bytes arrived but whose end never did, in the order they began.
  func unfinished() -> [UnfinishedCLC] {
    var result: [UnfinishedCLC] = []
    for (key, stream) in streams {
      guard let (message, received, origin) = stream.unfinishedMessage() else { continue }
      result.append(
        UnfinishedCLC(
          message: message, received: received, source: key.source, destination: key.destination,
          frame: origin.frame, nanoseconds: origin.nanoseconds, interface: origin.interface))
    }
    return result.sorted { ($0.nanoseconds, $0.frame) < ($1.nanoseconds, $1.frame) }
  }
}

/// The CLC state of one TCP direction.
struct CLCStream {
  enum Phase { case clc, ended, overflowed }

  struct Origin {
    var frame: Int
    var nanoseconds: Int64
    var interface: Int
  }

  struct HeldSegment {
    var sequence: UInt32
    var bytes: [UInt8]
    var origin: Origin
  }

  struct DeliveredMessage {
    var start: UInt32
    var end: UInt32
    var message: CLCMessage
  }

  var phase = Phase.clc
  /// Sequence number of `pending[0]`: the first byte not yet part of a reported message.
  var next: UInt32?
  /// Contiguous bytes from `next`: the start of a message not complete yet.
  var pending: [UInt8] = []
  var pendingOrigin = Origin(frame: 0, nanoseconds: 0, interface: 0)
  /// Segments beyond a gap, waiting for it to be filled.
  var held: [HeldSegment] = []
  var heldBytes = 0
  /// The last messages reported, to recognise their retransmissions.
  var delivered: [DeliveredMessage] = []

  init(next: UInt32?) { self.next = next }

  /// Signed distance from `b` to `a` in sequence space.
  static func distance(_ a: UInt32, from b: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }

  mutating func receive(
    sequence: UInt32, _ payload: UnsafeRawBufferPointer, whole: Bool, origin: Origin
  ) -> CLCSegmentResult {
    var result = CLCSegmentResult()
    let length = payload.count
    for d in delivered
    where Self.distance(d.start, from: sequence) >= 0 && Self.distance(d.end, from: sequence) <= length {
      result.messages.append(ReassembledCLC(message: d.message, retransmission: true))
    }
    guard phase == .clc else {
      if result.messages.isEmpty { result.plainBytes = length }
      return result
    }
    guard let next else {
      phase = .ended
      result.plainBytes = length
      return result
    }
    let end = next &+ UInt32(pending.count)
    let offset = Self.distance(sequence, from: end)
    if offset + length <= 0 {
      // Every byte was received before: a retransmission.
      return result
    }
    if offset > 0 {
      // A gap before this segment: hold it until the gap is filled.
      if !held.contains(where: { $0.sequence == sequence && $0.bytes.count >= length }) {
        held.append(HeldSegment(sequence: sequence, bytes: Array(payload), origin: origin))
        heldBytes += length
      }
      checkLimit(&result)
      return result
    }
    append(payload, from: -offset, origin: origin)
    drainHeld()
    parse(&result, origin: origin)
    if !whole && phase == .clc && !pending.isEmpty {
      // The capture cut this segment short (snapshot length): the rest of the message is
      // not in the file, so report it as far as it goes and stop following the stream.
      emitUnfinished(&result)
    }
    checkLimit(&result)
    return result
  }

  private mutating func append(_ bytes: UnsafeRawBufferPointer, from start: Int, origin: Origin) {
    if pending.isEmpty { pendingOrigin = origin }
    pending.append(contentsOf: bytes[start...])
  }

  private mutating func append(_ bytes: [UInt8], from start: Int, origin: Origin) {
    if pending.isEmpty { pendingOrigin = origin }
    pending.append(contentsOf: bytes[start...])
  }

  /// Moves held segments that now continue the stream into `pending`.
  private mutating func drainHeld() {
    guard let next else { return }
    var progress = true
    while progress && !held.isEmpty {
      progress = false
      let end = next &+ UInt32(pending.count)
      for index in held.indices {
        let segment = held[index]
        let offset = Self.distance(segment.sequence, from: end)
        guard offset <= 0 else { continue }
        held.remove(at: index)
        heldBytes -= segment.bytes.count
        if offset + segment.bytes.count > 0 {
          append(segment.bytes, from: -offset, origin: segment.origin)
        }
        progress = true
        break
      }
    }
  }

  /// Reports every complete message at the front of `pending`.
  private mutating func parse(_ result: inout CLCSegmentResult, origin: Origin) {
    while phase == .clc, !pending.isEmpty, let start = next {
      let header = pending.withUnsafeBytes { bytes in
        CLCMessage.looksLikeCLC(bytes) ? Int(bytes.u16be(5)) : nil
      }
      guard let declared = header else {
        if pending.count < 5 && Self.couldStartCLC(pending) { return }
        // Not a CLC header: the CLC phase of this direction is over.
        phase = .ended
        result.plainBytes += pending.count
        pending = []
        held = []
        heldBytes = 0
        return
      }
      if pending.count < 8 { return }
      let available = min(pending.count, max(declared, 8))
      guard
        let (message, consumed) = pending.withUnsafeBytes({ bytes in
          CLCMessage.decode(bytes.slice(0, available))
        })
      else { return }
      if case .lengthTooSmall = message.problem {
        // The length cannot be trusted, so neither can anything after it.
        result.messages.append(ReassembledCLC(message: message, retransmission: false))
        stop()
        return
      }
      if pending.count < declared { return }
      result.messages.append(ReassembledCLC(message: message, retransmission: false))
      if message.problem != nil {
        stop()
        return
      }
      let end = start &+ UInt32(consumed)
      delivered.append(DeliveredMessage(start: start, end: end, message: message))
      if delivered.count > 8 { delivered.removeFirst() }
      pending.removeFirst(consumed)
      next = end
      pendingOrigin = origin
    }
  }

  private mutating func emitUnfinished(_ result: inout CLCSegmentResult) {
    if let (message, _, _) = unfinishedMessage() {
      result.messages.append(ReassembledCLC(message: message, retransmission: false))
    }
    stop()
  }

  private mutating func stop() {
    phase = .ended
    pending = []
    held = []
    heldBytes = 0
  }

  private mutating func checkLimit(_ result: inout CLCSegmentResult) {
    guard phase == .clc, pending.count + heldBytes > CLCStreams.bufferLimit else { return }
    phase = .overflowed
    pending = []
    held = []
    heldBytes = 0
    result.overflowed = true
  }

  /// The message `pending` begins, decoded as far as it goes, if it begins one.
  func unfinishedMessage() -> (CLCMessage, Int, Origin)? {
    guard phase == .clc, pending.count >= 8 else { return nil }
    return pending.withUnsafeBytes { bytes in
      CLCMessage.decode(bytes).map { ($0.message, bytes.count, pendingOrigin) }
    }
  }

  /// True when `bytes` (fewer than 5) can be the start of a CLC header.
  static func couldStartCLC(_ bytes: [UInt8]) -> Bool {
    let eyecatchers: [[UInt8]] = [[0xE2, 0xD4, 0xC3, 0xD9], [0xE2, 0xD4, 0xC3, 0xC4]]
    return eyecatchers.contains { eye in
      zip(bytes.prefix(4), eye).allSatisfy { $0 == $1 }
    }
  }
}
