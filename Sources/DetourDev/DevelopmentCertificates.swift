import Crypto
import CryptoExtras
import DetourSessions
import Foundation
import SwiftASN1
import X509

/// A throw-away certificate authority and a server certificate it signed for `localhost` and `127.0.0.1`, written
/// as PEM files for `detour dev --tls`.
///
/// Guarantees: a new authority every time, whose key is never written anywhere (nothing else can ever be signed
/// by it); the server key file is readable by its owner only; the certificate names `localhost` and `127.0.0.1`
/// and is for server authentication only. For trying Detour over HTTPS, never for serving anything real.
public struct DevelopmentCertificates: Sendable {
    /// The kind of server key: browsers take both.
    public enum KeyKind: Sendable {
        case ecdsa
        case rsa
    }

    /// The authority's certificate, to be trusted by the clients that try Detour (`curl --cacert`, a browser).
    public let authorityFile: String
    /// The server certificate (`server.tls.cert_file`).
    public let certificateFile: String
    /// Its private key (`server.tls.key_file`).
    public let keyFile: String
    /// The server certificate's SHA-256 fingerprint (hex), as Detour logs it.
    public let fingerprint: String

    /// Makes an authority and a server certificate valid from `now` for `lifetime`, and writes `ca.pem`,
    /// `cert.pem` and `key.pem` into `folder` (which must exist).
    public static func make(
        in folder: URL, key kind: KeyKind = .ecdsa, now: Date = Date(), lifetime: TimeInterval = 7 * 86_400
    ) throws -> DevelopmentCertificates {
        let authorityKey = P256.Signing.PrivateKey()
        let authorityName = try DistinguishedName { CommonName("Detour development CA (throw-away)") }
        let authorityIdentifier = SubjectKeyIdentifier(hash: .init(authorityKey.publicKey))
        let validity = (before: now - 300, after: now + lifetime)
        let authority = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(authorityKey.publicKey),
            notValidBefore: validity.before, notValidAfter: validity.after, issuer: authorityName,
            subject: authorityName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                authorityIdentifier
            },
            issuerPrivateKey: .init(authorityKey))
        let serverKey: Certificate.PrivateKey =
            switch kind {
            case .ecdsa: .init(P256.Signing.PrivateKey())
            case .rsa: .init(try _RSA.Signing.PrivateKey(keySize: .bits2048))
            }
        let server = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: serverKey.publicKey,
            notValidBefore: validity.before, notValidAfter: validity.after, issuer: authorityName,
            subject: try DistinguishedName { CommonName("localhost") }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: kind == .rsa))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
                AuthorityKeyIdentifier(keyIdentifier: authorityIdentifier.keyIdentifier)
            },
            issuerPrivateKey: .init(authorityKey))
        let files = (
            authority: folder.appendingPathComponent("ca.pem"), certificate: folder.appendingPathComponent("cert.pem"),
            key: folder.appendingPathComponent("key.pem")
        )
        try Data(authority.serializeAsPEM().pemString.utf8).write(to: files.authority)
        try Data(server.serializeAsPEM().pemString.utf8).write(to: files.certificate)
        guard
            FileManager.default.createFile(
                atPath: files.key.path, contents: Data(try serverKey.serializeAsPEM().pemString.utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: files.key.path]) }
        var der = DER.Serializer()
        try der.serialize(server)
        return DevelopmentCertificates(
            authorityFile: files.authority.path, certificateFile: files.certificate.path, keyFile: files.key.path,
            fingerprint: Hex.lowercase(SHA256.hash(data: der.serializedBytes)))
    }
}
