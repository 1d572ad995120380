import ArgumentParser
import CaptureFiles
import Rendering
import SMCWire
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// `smcpair decode`: the SMC conversation in one or more capture files.
struct Decode: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show the SMC conversation in capture files: handshake, fallback reason, CDC and data records.",
    discussion: """
      Reads pcap and pcapng files (Ethernet, Linux cooked SLL/SLL2 as written by 'tcpdump -i any', raw IP), \
      for example from smcdump-ex or from tcpdump on the NIC and the SMC dump device. Prints one line per \
      SMC-relevant event, then a summary per file: connections (SMC-R, SMC-D, or fallback to TCP with the \
      reason) and the dump-header calibration.

      The SMC dump header's layout is not public: smcpair measures it from each file's CDC records and \
      reports what it found. If a file has no CDC records, pass --dump-header-len.

      Only regular files are read: a pipe, FIFO or device (/dev/stdin) is refused; save it to a \
      file first. A file cut while it is decoded ends with the byte offset, like a truncated one.

      Exit status (sysexits): 0 decoded; 1 standard output went away; 64 usage error; 65 a file \
      is not a capture or is damaged (events before the damage are still printed); 66 a file \
      cannot be opened (missing, not a regular file, no permission). With several files, the \
      first of 66 and 65 met.

      Examples:
        smcpair decode client.pcapng
        smcpair decode --json smc.pcap > events.jsonl
        smcpair decode --dump-header-len 16 data-only.pcap
      """)

  @Argument(help: "Capture files (pcap or pcapng).")
  var files: [String]

  @Flag(
    help: "Write JSON Lines to standard output (schema: docs/formats.md); the summary goes to standard error."
  )
  var json = false

  @Option(
    help: ArgumentHelp(
      "Dump header length in bytes, instead of calibrating it from CDC records.", valueName: "N"))
  var dumpHeaderLen: Int?

  @Flag(help: "No summary.")
  var quiet = false

  func validate() throws {
    if files.isEmpty { throw ValidationError("name at least one capture file") }
    if let n = dumpHeaderLen, n < 8 || n > 1024 {
      throw ValidationError(
        "--dump-header-len must be between 8 and 1024 (the header starts with a 4-byte magic)")
    }
  }

  func run() throws {
    var failed: Int32? = nil
    var outputLost = false
    for file in files {
      let decoder: CaptureDecoder
      do {
        decoder = try CaptureDecoder(path: file, options: DecodeOptions(dumpHeaderLength: dumpHeaderLen))
      } catch {
        writeStandardError("smcpair decode: \(error.description)\n")
        failed = failed ?? (error.code == .io ? 66 : 65)
        continue
      }
      // The renderer in use owns the output buffer while this file is decoded.
      var jsonRenderer = DecodeJSONRenderer(sink: OutputSink(fd: json ? 1 : -1), file: file)
      var tableRenderer = DecodeTableRenderer(sink: OutputSink(fd: json ? -1 : 1))
      var started = false
      do {
        try decoder.run { event in
          if !started {
            started = true
            let names = decoder.interfaces.indices.map(decoder.interfaceName)
            jsonRenderer.setInterfaces(names)
            tableRenderer.setInterfaces(names)
            if !json { tableRenderer.header(file: file) }
          }
          if json { jsonRenderer.render(event) } else { tableRenderer.render(event) }
        }
      } catch {
        jsonRenderer.sink.flush()
        tableRenderer.sink.flush()
        writeStandardError("smcpair decode: \(error.description)\n")
        failed = failed ?? Self.exitStatus(error)
        continue
      }
      if !json && !started { tableRenderer.header(file: file) }
      let summary = decoder.summary
      if !quiet {
        let text = DecodeSummaryText.render(summary)
        if json {
          jsonRenderer.sink.flush()
          writeStandardError(text)
        } else {
          tableRenderer.sink.append("\n")
          tableRenderer.sink.append(string: text)
        }
      }
      jsonRenderer.sink.flush()
      tableRenderer.sink.flush()
      outputLost = outputLost || jsonRenderer.sink.failed || tableRenderer.sink.failed
      if let damage = summary.damage {
        writeStandardError("smcpair decode: \(damage.description)\n")
        failed = failed ?? (damage.code == .io ? 66 : 65)
      }
    }
    if let failed { throw ExitCode(failed) }
    // Standard output going away (e.g. `| head`) is not worth a message, but is not success.
    if outputLost { throw ExitCode(1) }
  }

  /// 66 cannot open, 65 not a capture or damaged (sysexits).
  static func exitStatus(_ error: any Error) -> Int32 {
    guard let failure = error as? CaptureFileError else { return 65 }
    return failure.code == .io ? 66 : 65
  }
}
