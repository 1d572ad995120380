import ArgumentParser

/// `smcpair`: two-sided SMC capture and analysis.
@main
struct SMCPair: ParsableCommand {
  static let version = "0.1.0"

  static let configuration = CommandConfiguration(
    commandName: "smcpair",
    abstract: "Capture and analyse both sides of SMC (AF_SMC) connections.",
    discussion: """
      SMC moves data through shared memory, so an ordinary capture shows only the TCP handshake. smcpair \
      decodes SMC dump-device captures (smcdump-ex, tcpdump -i any) down to CLC and CDC messages.

      Start with:  smcpair decode capture.pcapng
      """,
    version: version,
    subcommands: [
      Decode.self, MergeCommand.self, TimelineCommand.self, LabCommand.self, HostsCommand.self,
      CopyCommand.self, CaptureCommand.self, SessionsCommand.self,
    ]
  )
}
