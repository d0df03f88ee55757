import Testing

@testable import DetourOIDC

/// `oidc.claims`: dotted paths into the claims of real providers, the ID token before userinfo, and the bounded
/// nested claims policies read.
@Suite struct ClaimMappingTests {
    static let keycloak: [String: JSONValue] = [
        "sub": .string("f:1"), "email": .string("ann@example.com"), "email_verified": .bool(true),
        "realm_access": .object(["roles": .array([.string("admin"), .string("user")])]),
        "resource_access": .object(["detour": .object(["roles": .array([.string("viewer")])])]),
        "cognito:groups": .array([.string("ops")]),
        "https://example.com/roles": .array([.string("auditor")]),
        "realm_access.roles": .array([.string("top-level")]),
    ]

    @Test func pathsReachNestedClaimsAndNamesWithDotsOrColons() {
        func at(_ path: String) -> [String]? { ClaimMapping.value(at: path, in: Self.keycloak)?.strings }
        #expect(at("realm_access.roles") == ["top-level"], "a claim named exactly so comes before a nested one")
        #expect(at("realm_access.nothing") == nil)
        #expect(at("resource_access.detour.roles") == ["viewer"])
        #expect(at("cognito:groups") == ["ops"])
        #expect(at("https://example.com/roles") == ["auditor"], "the exact name first")
        #expect(at("email") == ["ann@example.com"])
        #expect(at("realm_access.nothing") == nil)
        #expect(at("realm_access") == nil, "an object is not a string list")
        #expect(at("") == nil)
    }

    @Test func theIDTokenComesFirstThenUserinfo() throws {
        let mapping = ClaimMapping(user: "email", groups: "realm_access.roles")
        let idToken: [String: JSONValue] = ["sub": .string("s"), "email": .string("ann@example.com")]
        let userinfo: [String: JSONValue] = [
            "email": .string("other@example.com"), "email_verified": .bool(true), "preferred_username": .string("ann"),
            "realm_access": .object(["roles": .array([.string("admin")])]),
        ]
        let identity = try mapping.identity(subject: "s", from: [idToken, userinfo])
        #expect(identity.user == "ann@example.com" && identity.email == "ann@example.com")
        #expect(identity.emailVerified == nil, "userinfo's email_verified speaks of userinfo's email, not this one")
        #expect(identity.groups == ["admin"], "groups from userinfo when the ID token has none")
        #expect(identity.preferredUsername == "ann")
        #expect(identity.claims["realm_access.roles"] == ["admin"])
        #expect(try ClaimMapping.standard.identity(subject: "s", from: [idToken]).user == "s")
        let upn = ClaimMapping(email: "upn")
        #expect(
            try upn.identity(subject: "s", from: [["upn": .string("a@b"), "email_verified": .bool(false)]])
                .emailVerified == nil, "email_verified is about the email claim, not upn")
    }

    /// A `user` claim that is missing, empty or not a string refuses the sign-in, never falls back to `sub`.
    @Test func aMissingUserClaimIsRefusedNotReplacedBySub() {
        let mapping = ClaimMapping(user: "email")
        for claims: [String: JSONValue] in [
            [:], ["email": .string("")], ["email": .array([.string("a@b")])], ["email": .number(1)],
        ] {
            #expect(throws: OIDCError.self) { try mapping.identity(subject: "s", from: [claims]) }
        }
    }

    @Test func policiesSeeNestedClaimsByPathWithinBounds() {
        let claims = ClaimMapping.policyClaims(Self.keycloak)
        #expect(claims["realm_access.roles"] == ["top-level"], "a top-level name wins over a nested path")
        #expect(claims["resource_access.detour.roles"] == ["viewer"])
        #expect(claims["https://example.com/roles"] == ["auditor"])
        #expect(claims["sub"] == nil, "protocol claims stay out")
        var deep: JSONValue = .string("leaf")
        for level in (0..<6).reversed() { deep = .object(["l\(level)": deep]) }
        #expect(ClaimMapping.policyClaims(["d": deep]).isEmpty, "deeper than four levels is not read")
        let many = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("c\($0)", JSONValue.string("v")) })
        #expect(ClaimMapping.policyClaims(many).count == 256)
    }
}
