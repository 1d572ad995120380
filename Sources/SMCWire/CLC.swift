import CaptureFiles

/// The SMC path a CLC header announces (bits 1-0 for v1, bits 3-2 for v2 proposals).
public enum SMCPath: UInt8, Sendable, Equatable {
  case smcR = 0
  case smcD = 1
  case none = 2
  case both = 3

  /// The path in the two low bits of `bits` (every two-bit value names one).
  public init(lowBitsOf bits: UInt8) {
    switch bits & 3 {
    case 0: self = .smcR
    case 1: self = .smcD
    case 2: self = .none
    default: self = .both
    }
  }

  /// `R`, `D`, `N` (none) or `B` (both).
  public var letter: String {
    switch self {
    case .smcR: "R"
    case .smcD: "D"
    case .none: "N"
    case .both: "B"
    }
  }
}

/// SMC-R or SMC-D.
public enum SMCMode: UInt8, Sendable, Equatable {
  case smcR = 1
  case smcD = 2

  public var letter: String { self == .smcR ? "R" : "D" }
}

/// A decoded CLC message (Proposal, Accept, Confirm, Decline).
///
/// Fields that a message type does not carry, or that lie beyond the captured bytes, are nil.
public struct CLCMessage: Sendable, Equatable {
  public enum Kind: UInt8, Sendable {
    case proposal = 1
    case accept = 2
    case confirm = 3
    case decline = 4

    public var name: String {
      switch self {
      case .proposal: "proposal"
      case .accept: "accept"
      case .confirm: "confirm"
      case .decline: "decline"
      }
    }
  }

  /// Problems found while decoding: the message is reported as far as it is sound.
  public enum Problem: Sendable, Equatable {
    /// The length field says more than the segment holds.
    case truncated(declared: Int, available: Int)
    /// The length field is smaller than the minimum for the type.
    case lengthTooSmall(declared: Int, minimum: Int)
    /// No eyecatcher at `length - 4`: the length field probably lies.
    case trailerMissing(at: Int)

    public var text: String {
      switch self {
      case .truncated(let d, let a): "CLC length says \(d) bytes but only \(a) are in the segment"
      case .lengthTooSmall(let d, let m): "CLC length \(d) is below the minimum \(m) for this type"
      case .trailerMissing(let at): "no trailing eyecatcher at byte \(at): the CLC length field may lie"
      }
    }
  }

  public static let smcREyecatcher: UInt32 = 0xE2D4_C3D9
  public static let smcDEyecatcher: UInt32 = 0xE2D4_C3C4

  public var kind: Kind
  /// Eyecatcher says SMC-D ("SMCD") rather than SMC-R ("SMCR").
  public var eyecatcherIsSMCD: Bool
  /// Total length from the header.
  public var length: Int
  public var version: UInt8
  /// Bits 1-0 of byte 7.
  public var path: SMCPath
  /// Bits 3-2 of byte 7 (v2 path for proposals).
  public var pathV2: SMCPath
  /// Bit 0x08 of byte 7: First Contact (Accept/Confirm), Out-of-Sync (Decline); always
  /// false for a Proposal, whose bits 3-2 are the v2 path.
  public var firstContact: Bool
  public var problem: Problem?

  /// Peer id (Proposal, SMC-R Accept/Confirm, Decline).
  public var peerID: UInt64?
  /// RoCE GID (Proposal, SMC-R Accept/Confirm), as two halves.
  public var gid: (UInt64, UInt64)?
  public var mac: UInt64?
  // SMC-R Accept/Confirm
  public var qpNumber: UInt32?
  public var rmbRkey: UInt32?
  public var rmbeIndex: UInt8?
  public var alertToken: UInt32?
  public var rmbeSizeCode: UInt8?
  public var qpMTU: UInt8?
  public var rmbAddress: UInt64?
  public var initialPSN: UInt32?
  // SMC-D Accept/Confirm
  public var ismGID: UInt64?
  public var dmbToken: UInt64?
  public var dmbeIndex: UInt8?
  public var dmbeSizeCode: UInt8?
  public var linkID: UInt32?
  // Decline
  public var diagnosis: UInt32?
  public var osType: UInt8?
  // Proposal
  public var ipAreaOffset: UInt16?
  public var ipv4Subnet: UInt32?
  public var ipv4PrefixLength: UInt8?
  public var ipv6PrefixCount: UInt8?

  public static func == (a: CLCMessage, b: CLCMessage) -> Bool {
    a.kind == b.kind && a.length == b.length && a.version == b.version && a.path == b.path
      && a.firstContact == b.firstContact && a.peerID == b.peerID && a.alertToken == b.alertToken
      && a.diagnosis == b.diagnosis && a.dmbToken == b.dmbToken && a.problem == b.problem
  }

  /// SMC-R or SMC-D, for Accept/Confirm (from the eyecatcher and path).
  public var mode: SMCMode? {
    switch kind {
    case .accept, .confirm: eyecatcherIsSMCD || path == .smcD ? .smcD : .smcR
    default: nil
    }
  }

  /// RMBE (or DMBE) size in bytes from the compressed size code: 1 << (code + 14).
  public var bufferSize: Int? {
    if let code = rmbeSizeCode ?? dmbeSizeCode { return 1 << (Int(code) + 14) }
    return nil
  }

  public var declineName: String? { diagnosis.map(DeclineReason.name) }

  /// True when `bytes` starts with a CLC eyecatcher and a known CLC type.
  public static func looksLikeCLC(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count >= 5 else { return false }
    let eye = bytes.u32be(0)
    guard eye == smcREyecatcher || eye == smcDEyecatcher else { return false }
    let type = bytes.u8(4)
    return type >= 1 && type <= 4
  }

  /// Decodes one CLC message at the start of `bytes`. Returns nil when there is no CLC
  /// header (fewer than 8 bytes or no eyecatcher). `consumed` is the declared length, capped
  /// to the available bytes, so callers can walk several messages in one segment.
  public static func decode(_ bytes: UnsafeRawBufferPointer) -> (message: CLCMessage, consumed: Int)? {
    guard bytes.count >= 8, looksLikeCLC(bytes), let kind = Kind(rawValue: bytes.u8(4)) else { return nil }
    let eye = bytes.u32be(0)
    let length = Int(bytes.u16be(5))
    let flags = bytes.u8(7)
    var m = CLCMessage(
      kind: kind, eyecatcherIsSMCD: eye == smcDEyecatcher, length: length, version: flags >> 4,
      path: SMCPath(lowBitsOf: flags), pathV2: SMCPath(lowBitsOf: flags >> 2),
      // Bits 3-2 of a Proposal are its v2 path, not a First Contact flag.
      firstContact: kind != .proposal && flags & 0x08 != 0)
    let minimum = kind == .decline ? 28 : (kind == .proposal ? 52 : 48)
    // Only the bytes inside both the declared length and the capture are decoded.
    let available = min(bytes.count, max(length, 8))
    if length < minimum {
      m.problem = .lengthTooSmall(declared: length, minimum: minimum)
    } else if length > bytes.count {
      m.problem = .truncated(declared: length, available: bytes.count)
    } else {
      let trailer = bytes.u32be(length - 4)
      if trailer != smcREyecatcher && trailer != smcDEyecatcher {
        m.problem = .trailerMissing(at: length - 4)
      }
    }
    let b = bytes.slice(0, available)
    func has(_ offset: Int, _ size: Int) -> Bool { offset + size <= b.count }
    switch kind {
    case .proposal:
      if has(8, 8) { m.peerID = b.u64be(8) }
      if has(16, 16) { m.gid = (b.u64be(16), b.u64be(24)) }
      if has(32, 6) { m.mac = UInt64(b.u32be(32)) << 16 | UInt64(b.u16be(36)) }
      if has(38, 2) {
        let ipOffset = b.u16be(38)
        m.ipAreaOffset = ipOffset
        if ipOffset >= 8, has(40, 8) { m.ismGID = b.u64be(40) }
        let prefix = 40 + Int(ipOffset)
        if has(prefix, 8) {
          m.ipv4Subnet = b.u32be(prefix)
          m.ipv4PrefixLength = b.u8(prefix + 4)
          m.ipv6PrefixCount = b.u8(prefix + 7)
        }
      }
    case .accept, .confirm:
      if m.mode == .smcD {
        if has(8, 8) { m.ismGID = b.u64be(8) }
        if has(16, 8) { m.dmbToken = b.u64be(16) }
        if has(24, 1) { m.dmbeIndex = b.u8(24) }
        if has(25, 1) { m.dmbeSizeCode = b.u8(25) >> 4 }
        if has(28, 4) { m.linkID = b.u32be(28) }
      } else {
        if has(8, 8) { m.peerID = b.u64be(8) }
        if has(16, 16) { m.gid = (b.u64be(16), b.u64be(24)) }
        if has(32, 6) { m.mac = UInt64(b.u32be(32)) << 16 | UInt64(b.u16be(36)) }
        if has(38, 3) { m.qpNumber = UInt32(b.u16be(38)) << 8 | UInt32(b.u8(40)) }
        if has(41, 4) { m.rmbRkey = b.u32be(41) }
        if has(45, 1) { m.rmbeIndex = b.u8(45) }
        if has(46, 4) { m.alertToken = b.u32be(46) }
        if has(50, 1) {
          m.rmbeSizeCode = b.u8(50) >> 4
          m.qpMTU = b.u8(50) & 0x0F
        }
        if has(52, 8) { m.rmbAddress = b.u64be(52) }
        if has(61, 3) { m.initialPSN = UInt32(b.u16be(61)) << 8 | UInt32(b.u8(63)) }
      }
    case .decline:
      if has(8, 8) { m.peerID = b.u64be(8) }
      if has(16, 4) { m.diagnosis = b.u32be(16) }
      if has(20, 1) { m.osType = b.u8(20) >> 4 }
    }
    return (m, min(max(length, 8), bytes.count))
  }

  private init(
    kind: Kind, eyecatcherIsSMCD: Bool, length: Int, version: UInt8, path: SMCPath, pathV2: SMCPath,
    firstContact: Bool
  ) {
    self.kind = kind
    self.eyecatcherIsSMCD = eyecatcherIsSMCD
    self.length = length
    self.version = version
    self.path = path
    self.pathV2 = pathV2
    self.firstContact = firstContact
  }
}
