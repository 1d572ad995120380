import AgentProtocol
import Testing

@testable import Orchestration

/// `--smc-mode` and `--smc-type` reach the smcdump-ex engine as its own `-m` and `-t` (the
/// same values), so the flags mean the same on every engine that has a dump device.
@Suite struct VolumeOnToolEngines {
  @Test func smcdumpExGetsTheModeAndTypeOfThePlan() {
    var facts = CaptureEngineChoiceTests.facts(smcdumpEx: true)
    facts.kernel = "5.10.134-18.al8.x86_64"
    let plan = CapturePlan(session: "s", interfaces: ["eth1"], smcType: .cdc, smcMode: .smcr)
    let argv = HostToolCapture(engine: .smcdumpEx, facts: facts, folder: "/c/s", runsAsRoot: true).argv(plan)
    let tool = argv.firstIndex(of: "/usr/bin/smcdump-ex") ?? 0
    #expect(Array(argv[tool...].prefix(5)) == ["/usr/bin/smcdump-ex", "-m", "smcr", "-t", "cdc"], "\(argv)")
  }

  @Test func flagsAnEngineCannotApplyAreRefusedByName() {
    let facts = CaptureEngineChoiceTests.facts(smcdumpEx: true)
    func problem(_ engine: CaptureEngine, _ plan: CapturePlan) -> String? {
      HostToolCapture(engine: engine, facts: facts, folder: "/c/s", runsAsRoot: true).unsupported(plan)
    }
    let typed = CapturePlan(session: "s", interfaces: ["eth1"], smcType: .cdc, smcMode: .smcr)
    #expect(
      problem(.tcpdump, typed)?.contains("--smc-type, --smc-mode are not applied by the tcpdump") == true)
    #expect(problem(.smcdumpEx, typed) == nil)
    let cut = CapturePlan(session: "s", interfaces: ["eth1"], dataSnaplen: 64)
    #expect(problem(.smcdumpEx, cut)?.contains("--data-snaplen is not applied by the smcdump-ex") == true)
    let sized = CapturePlan(session: "s", interfaces: ["eth1"], stop: StopConditions(maxFileBytes: 1 << 20))
    #expect(problem(.tcpdump, sized)?.contains("--max-size") == true)
    #expect(problem(.tcpdump, CapturePlan(session: "s", interfaces: ["eth1"])) == nil)
  }
}
