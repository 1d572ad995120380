import Inventory

/// The program that captures on a host. Every engine ends in the same place: capture files
/// on the host, each with its size and (where the host has sha256sum) SHA-256, which the
/// coordinator pulls, verifies and removes (docs/capture.md, "Capture engines").
public enum CaptureEngine: String, Sendable, Equatable, CaseIterable {
  /// smcpair's own agent (deployed, checked by SHA-256).
  case agent
  /// The host's own tcpdump, detached from the SSH connection, stopped with SIGINT.
  case tcpdump
  /// Alibaba Cloud Linux's smc-tools `smcdump-ex`, which turns the SMC dump on and off itself.
  case smcdumpEx = "smcdump-ex"
}

/// The engine a host gets, and why (`hosts check` shows both).
public struct EngineDecision: Sendable, Equatable {
  public var engine: CaptureEngine
  public var reason: String

  /// Chooses for `setting` from what the host has. `agentArchitecture` is the local agent
  /// binary's (`uname -m` spelling, nil when unknown); `dumpWanted` is false for
  /// `smc_dump: off`. Throws the reason nothing fits, in words that say what to change.
  public static func choose(
    _ setting: CaptureEngineSetting, facts: HostFacts, agentArchitecture: String?, deployAllowed: Bool,
    dumpWanted: Bool
  ) -> Result<EngineDecision, EngineRefusal> {
    let agentFits = facts.os == "Linux" && agentArchitecture != nil && facts.architecture == agentArchitecture
    let agentWhyNot: String
    if facts.os != "Linux" {
      agentWhyNot =
        "the host runs \(facts.os.isEmpty ? "an unknown OS" : facts.os), the agent is a Linux program"
    } else if !agentFits {
      agentWhyNot =
        "the host is \(facts.architecture.isEmpty ? "of unknown architecture" : facts.architecture), the agent binary is \(agentArchitecture ?? "of unknown architecture")"
    } else {
      agentWhyNot = "deploy_agent: false forbids copying the agent there"
    }
    // sha256sum is not required: without it a pull is checked by size and a full read.
    let toolsMissing = [facts.hasSetsid ? nil : "setsid", facts.hasTimeout ? nil : "timeout"].compactMap {
      $0
    }
    func tool(_ engine: CaptureEngine, _ why: String) -> Result<EngineDecision, EngineRefusal> {
      guard toolsMissing.isEmpty else {
        return .failure(
          EngineRefusal(
            "\(engine.rawValue) needs \(toolsMissing.joined(separator: ", ")) on the host (util-linux and coreutils) to run detached and bounded"
          ))
      }
      return .success(EngineDecision(engine: engine, reason: why))
    }
    switch setting {
    case .agent:
      guard agentFits else { return .failure(EngineRefusal("engine: agent, but \(agentWhyNot)")) }
      return .success(EngineDecision(engine: .agent, reason: "engine: agent"))
    case .tcpdump:
      guard facts.tcpdump != nil else {
        return .failure(
          EngineRefusal("engine: tcpdump, but the host has no tcpdump (install it, or choose another engine)")
        )
      }
      return tool(.tcpdump, "engine: tcpdump")
    case .smcdumpEx:
      guard facts.smcdumpEx != nil else {
        return .failure(
          EngineRefusal(
            "engine: smcdump-ex, but the host has no executable smcdump-ex (install smc-tools, or set smcdump_ex: to its path)"
          ))
      }
      guard dumpWanted else {
        return .failure(
          EngineRefusal(
            "engine: smcdump-ex, but smc_dump: off; smcdump-ex always turns the SMC dump on (use engine: tcpdump for the NIC only)"
          ))
      }
      return tool(.smcdumpEx, "engine: smcdump-ex")
    case .auto:
      if agentFits && deployAllowed {
        return .success(
          EngineDecision(
            engine: .agent, reason: "\(facts.architecture) Linux host and the agent may be deployed"))
      }
      if dumpWanted, let path = facts.smcdumpEx {
        return tool(.smcdumpEx, "no agent (\(agentWhyNot)); the SMC dump is wanted and \(path) is there")
      }
      if facts.tcpdump != nil {
        let dump =
          dumpWanted
          ? (facts.smcdumpEx == nil ? "; no smcdump-ex, so no SMC dump (tcpdump cannot turn it on)" : "") : ""
        return tool(.tcpdump, "no agent (\(agentWhyNot))\(dump)")
      }
      return .failure(
        EngineRefusal("nothing can capture here: no agent (\(agentWhyNot)), no smcdump-ex and no tcpdump"))
    }
  }
}

/// Why no engine fits a host.
public struct EngineRefusal: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
