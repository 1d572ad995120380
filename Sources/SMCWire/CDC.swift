import CaptureFiles

/// Producer flags of a CDC message (byte 24 of SMC-R CDC).
public struct CDCProducerFlags: OptionSet, Sendable, Hashable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }
  public static let writeBlocked = CDCProducerFlags(rawValue: 0x80)
  public static let urgentPending = CDCProducerFlags(rawValue: 0x40)
  public static let urgentPresent = CDCProducerFlags(rawValue: 0x20)
  public static let cursorUpdateRequested = CDCProducerFlags(rawValue: 0x10)
  public static let failoverValidation = CDCProducerFlags(rawValue: 0x08)

  public static let namesInOrder: [(CDCProducerFlags, String)] = [
    (.writeBlocked, "write_blocked"), (.urgentPending, "urgent_pending"),
    (.urgentPresent, "urgent_present"), (.cursorUpdateRequested, "cursor_update_requested"),
    (.failoverValidation, "failover_validation"),
  ]
}

/// Connection state flags of a CDC message (byte 25 of SMC-R CDC).
public struct CDCConnectionState: OptionSet, Sendable, Hashable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }
  public static let peerDoneWriting = CDCConnectionState(rawValue: 0x80)
  public static let peerClosed = CDCConnectionState(rawValue: 0x40)
  public static let peerAbort = CDCConnectionState(rawValue: 0x20)

  public static let namesInOrder: [(CDCConnectionState, String)] = [
    (.peerDoneWriting, "peer_done_writing"), (.peerClosed, "peer_closed"), (.peerAbort, "peer_abort"),
  ]
}

/// A ring-buffer position: (wrap, count).
public struct CDCCursor: Sendable, Hashable {
  public var wrap: UInt16
  public var count: UInt32
  public init(wrap: UInt16, count: UInt32) {
    self.wrap = wrap
    self.count = count
  }
}

/// A decoded CDC message: SMC-R (44 bytes, big-endian, with seqno and token) or SMC-D
/// (32 bytes, cursors in the sender's host byte order, no seqno).
public struct CDCMessage: Sendable, Hashable {
  public static let smcRLength = 44
  public static let smcDLength = 32
  public static let type: UInt8 = 0xFE

  public var mode: SMCMode
  /// SMC-R only.
  public var sequenceNumber: UInt16?
  /// SMC-R only: the receiver's RMBE alert token.
  public var token: UInt32?
  public var producer: CDCCursor
  public var consumer: CDCCursor
  public var producerFlags: CDCProducerFlags
  public var connectionState: CDCConnectionState

  public init(
    mode: SMCMode, sequenceNumber: UInt16?, token: UInt32?, producer: CDCCursor, consumer: CDCCursor,
    producerFlags: CDCProducerFlags = [], connectionState: CDCConnectionState = []
  ) {
    self.mode = mode
    self.sequenceNumber = sequenceNumber
    self.token = token
    self.producer = producer
    self.consumer = consumer
    self.producerFlags = producerFlags
    self.connectionState = connectionState
  }

  /// Decodes an SMC-R CDC message (needs 44 bytes starting FE 2C).
  public static func decodeSMCR(_ b: UnsafeRawBufferPointer) -> CDCMessage? {
    guard b.count >= smcRLength, b.u8(0) == type, b.u8(1) == UInt8(smcRLength) else { return nil }
    return CDCMessage(
      mode: .smcR, sequenceNumber: b.u16be(2), token: b.u32be(4),
      producer: CDCCursor(wrap: b.u16be(10), count: b.u32be(12)),
      consumer: CDCCursor(wrap: b.u16be(18), count: b.u32be(20)),
      producerFlags: CDCProducerFlags(rawValue: b.u8(24)),
      connectionState: CDCConnectionState(rawValue: b.u8(25)))
  }

  /// Decodes an SMC-D CDC message (32 bytes). In records of *received* SMC-D messages only
  /// the cursors are meaningful, so the type byte is not checked.
  public static func decodeSMCD(_ b: UnsafeRawBufferPointer, littleEndian: Bool = true) -> CDCMessage? {
    guard b.count >= smcDLength else { return nil }
    let be = !littleEndian
    return CDCMessage(
      mode: .smcD, sequenceNumber: nil, token: nil,
      producer: CDCCursor(wrap: b.u16(8, bigEndian: be), count: b.u32(10, bigEndian: be)),
      consumer: CDCCursor(wrap: b.u16(16, bigEndian: be), count: b.u32(18, bigEndian: be)),
      producerFlags: CDCProducerFlags(rawValue: b.u8(22)),
      connectionState: CDCConnectionState(rawValue: b.u8(23)))
  }

  /// The 44 wire bytes of an SMC-R message (reserved bytes zero).
  public func encodeSMCR() -> [UInt8] {
    var out = [UInt8](repeating: 0, count: CDCMessage.smcRLength)
    out[0] = CDCMessage.type
    out[1] = UInt8(CDCMessage.smcRLength)
    put16(&out, 2, sequenceNumber ?? 0)
    put32(&out, 4, token ?? 0)
    put16(&out, 10, producer.wrap)
    put32(&out, 12, producer.count)
    put16(&out, 18, consumer.wrap)
    put32(&out, 20, consumer.count)
    out[24] = producerFlags.rawValue
    out[25] = connectionState.rawValue
    return out
  }

  /// The 32 wire bytes of an SMC-D message, cursors little-endian (x86 host order).
  public func encodeSMCD() -> [UInt8] {
    var out = [UInt8](repeating: 0, count: CDCMessage.smcDLength)
    out[0] = CDCMessage.type
    func le16(_ at: Int, _ v: UInt16) {
      out[at] = UInt8(v & 0xFF)
      out[at + 1] = UInt8(v >> 8)
    }
    func le32(_ at: Int, _ v: UInt32) {
      for i in 0..<4 { out[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
    le16(8, producer.wrap)
    le32(10, producer.count)
    le16(16, consumer.wrap)
    le32(18, consumer.count)
    out[22] = producerFlags.rawValue
    out[23] = connectionState.rawValue
    return out
  }
}

/// An SMC-R LLC message (44 bytes; only in RDMA-level captures, never in dump records).
public struct LLCMessage: Sendable, Equatable {
  public var type: UInt8
  public var length: Int
  public var isResponse: Bool

  public static let typeNames: [UInt8: String] = [
    0x01: "confirm_link", 0x02: "add_link", 0x03: "add_link_cont", 0x04: "delete_link",
    0x05: "request_add_link", 0x06: "confirm_rkey", 0x07: "test_link", 0x08: "confirm_rkey_cont",
    0x09: "delete_rkey", 0x0A: "announce_credits",
    0x21: "confirm_link_v2", 0x22: "add_link_v2", 0x23: "add_link_cont_v2", 0x24: "delete_link_v2",
    0x25: "request_add_link_v2", 0x26: "confirm_rkey_v2", 0x27: "test_link_v2",
    0x28: "confirm_rkey_cont_v2", 0x29: "delete_rkey_v2",
  ]

  public var name: String { LLCMessage.typeNames[type] ?? "unknown_0x\(String(type, radix: 16))" }

  /// Decodes an LLC header; v2 types (0x21-0x29) carry a 16-bit length at offset 1.
  public static func decode(_ b: UnsafeRawBufferPointer) -> LLCMessage? {
    guard b.count >= 4 else { return nil }
    let type = b.u8(0)
    guard typeNames[type] != nil else { return nil }
    let isV2 = type >= 0x21
    let length = isV2 ? Int(b.u16be(1)) : Int(b.u8(1))
    guard isV2 || length == 44 else { return nil }
    return LLCMessage(type: type, length: length, isResponse: b.u8(3) & 0x80 != 0)
  }
}

@inline(__always) func put16(_ out: inout [UInt8], _ at: Int, _ v: UInt16) {
  out[at] = UInt8(v >> 8)
  out[at + 1] = UInt8(v & 0xFF)
}

@inline(__always) func put32(_ out: inout [UInt8], _ at: Int, _ v: UInt32) {
  for i in 0..<4 { out[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
}

@inline(__always) func put64(_ out: inout [UInt8], _ at: Int, _ v: UInt64) {
  for i in 0..<8 { out[at + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) }
}
