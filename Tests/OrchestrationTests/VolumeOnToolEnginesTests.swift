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
    let argv = HostToolCapture(engine: .smcdumpEx, facts: facts, folder: "/c/s", rootLogin: true).argv(plan)
    let tool = argv.firstIndex(of: "/usr/bin/smcdump-ex") ?? 0
    #expect(Array(argv[tool...].prefix(5)) == ["/usr/bin/smcdump-ex", "-m", "smcr", "-t", "cdc"], "\(argv)")
  }
}
