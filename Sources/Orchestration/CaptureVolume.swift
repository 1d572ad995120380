import AgentProtocol

extension CaptureRun {
  /// The capture's choice of SMC dump records (`--smc-type`, `--smc-mode`, `--data-snaplen`),
  /// as every agent of the run was asked.
  public struct Volume: Sendable, Equatable {
    public var smcType: SMCRecordType
    public var smcMode: SMCCaptureMode
    public var dataSnaplen: Int?
  }

  public var volume: Volume {
    Volume(smcType: options.smcType, smcMode: options.smcMode, dataSnaplen: options.dataSnaplen)
  }
}
