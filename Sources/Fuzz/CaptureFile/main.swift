import Alignment
import CaptureFiles
// Fuzz target: a whole capture file (pcap or pcapng) through the reader, the SMC decoder,
// the two-sided pairing and clock fit (the file against itself), the findings, the HTML
// timeline and the merged pcapng, in memory and within the pairing window.
import FuzzReplay
import MergePipeline
import Rendering
import SMCWire

#if canImport(Glibc)
  import Glibc
#endif

/// The input goes to a file: the reader maps files.
let path = "/dev/shm/smcpair-fuzz-capture-\(getpid()).bin"

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
  guard fd >= 0 else { return }
  if let base = bytes.baseAddress { _ = write(fd, base, bytes.count) }
  close(fd)
  if let decoder = try? CaptureDecoder(path: path) {
    var events = 0
    try? decoder.run { _ in events += 1 }
  }
  let observed = CaptureFindingsObserver()
  guard let alignment = try? Aligner.align(client: path, server: path, observer: observed) else { return }
  let findings = FindingsBuilder.build(alignment, observed: observed)
  _ = TimelineHTML.render(alignment, findings: findings, clientName: "c", serverName: "s")
  _ = MergeOutputs.alignmentJSON(alignment, client: path, server: path)
  try? MergeOutputs.writeMergedPcapng(
    alignment, client: path, server: path, clientName: "c", serverName: "s", to: path + ".merged")
  // The windowed merge: prefix pairing, calibration, two reading threads, the walk, the
  // per-frame notes and the writer from them.
  _ = try? MergeRun.run(client: path, server: path, out: path + ".windowed", formats: .pcapng)
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-capture-file", fuzzInput) }
}
