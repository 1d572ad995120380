/// The state of the agent's capture session (`status.state`).
public enum CaptureState: String, Sendable, CaseIterable {
  case prepared, capturing, stopped, finalized
}

/// Why a capture stopped (`status.stop_reason`), as the agent words it.
public enum StopReason: Sendable, Equatable, CustomStringConvertible {
  /// A `stop` request.
  case requested
  case durationReached
  case packetCountReached
  case byteLimitReached
  case fileSizeLimitReached
  /// The capture thread ended without a stop condition.
  case stopped
  /// A capture error (see `capture_error`).
  case error
  /// The agent got this signal (`SIGINT`, `SIGTERM`, `SIGHUP`).
  case signal(String)
  /// stdin closed and nobody attached: the agent finished on its own.
  case controlConnectionClosed
  /// Finalized by an `attach` client after its owner's connection was lost.
  case finalizedThroughAttach

  static let fixed: [(StopReason, String)] = [
    (.requested, "stop requested"), (.durationReached, "duration reached"),
    (.packetCountReached, "packet count reached"), (.byteLimitReached, "byte limit reached"),
    (.fileSizeLimitReached, "file size limit reached"), (.stopped, "stopped"), (.error, "error"),
    (.controlConnectionClosed, "control connection closed"),
    (.finalizedThroughAttach, "finalized through attach"),
  ]

  /// The wire text; nil for a text no agent writes.
  public init?(text: String) {
    if text.hasPrefix("signal "), text.count > 7 {
      self = .signal(String(text.dropFirst(7)))
      return
    }
    guard let known = Self.fixed.first(where: { $0.1 == text }) else { return nil }
    self = known.0
  }

  /// The wire text (`duration reached`, `signal SIGTERM` ...).
  public var description: String {
    if case .signal(let name) = self { return "signal \(name)" }
    return Self.fixed.first { $0.0 == self }?.1 ?? "stopped"
  }
}

/// What to do about the SMC dump device on a host (inventory `smc_dump`, plan `smc_dump`).
public enum SMCDumpSetting: Sendable, Equatable, CustomStringConvertible {
  /// Use the kernel's dump if it has it; capture the NIC only otherwise.
  case auto
  /// Missing dump support is an error.
  case required
  /// Capture the NIC only.
  case off
  /// Capture this existing device (for example the lab's stand-in).
  case device(String)

  public init(_ text: String) {
    switch text {
    case "auto": self = .auto
    case "required": self = .required
    case "off": self = .off
    default: self = .device(text)
    }
  }

  public var description: String {
    switch self {
    case .auto: "auto"
    case .required: "required"
    case .off: "off"
    case .device(let name): name
    }
  }

  /// The existing device to capture, for `.device`.
  public var deviceName: String? {
    if case .device(let name) = self { name } else { nil }
  }
}

/// Which SMC dump records to keep (`smcpair capture --smc-type`, plan `smc_type`), as
/// smcdump-ex's `-t`.
public enum SMCRecordType: String, Sendable, CaseIterable {
  /// Data and CDC records.
  case all
  /// Data records only (the slices of the data buffers).
  case raw
  /// CDC records only (the control messages with the cursors).
  case cdc
}

/// Which interfaces and SMC modes to capture (`smcpair capture --smc-mode`, plan `smc_mode`),
/// as smcdump-ex's `-m`.
public enum SMCCaptureMode: String, Sendable, CaseIterable {
  /// The NICs (handshake, fallbacks) and the SMC dump device.
  case all
  /// The SMC dump device only, SMC-R and SMC-D records.
  case smc
  /// The SMC dump device only, SMC-R records.
  case smcr
  /// The SMC dump device only, SMC-D records.
  case smcd

  /// The NICs are captured too.
  public var capturesNICs: Bool { self == .all }
}
