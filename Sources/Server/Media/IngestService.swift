import Foundation
import Ingest
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// Runs the RTMP (and, with a certificate, RTMPS) listeners for the application's lifetime.
struct IngestService: Service {
    let server: RTMPServer
    let onListening: @Sendable ([Int]) async -> Void

    func run() async throws {
        try await server.start()
        await onListening(server.boundPorts)
        try? await gracefulShutdown()
        try await server.shutdown()
    }

    /// The TLS context for RTMPS from PEM files (`LIVEHUB_TLS_CERT`, `LIVEHUB_TLS_KEY`).
    static func tlsContext(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        return try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
    }
}
