//! The portable schema, written by hand so it matches both `migrations/postgres` and
//! `migrations/sqlite`. JSON values are `Text`; timestamps are UTC `Timestamp`s.

diesel::table! {
    bootstrap_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (email) {
        email -> Text,
        password_hash -> Text,
        full_name -> Nullable<Text>,
        is_admin -> Bool,
        is_active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        password_changed_at -> Nullable<Timestamp>,
        id -> Nullable<Text>,
        tokens_valid_after -> Nullable<Timestamp>,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        slug -> Text,
        description -> Nullable<Text>,
        is_personal -> Bool,
        owner_email -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    team_members (team_id, email) {
        team_id -> Text,
        email -> Text,
        role -> Text,
        joined_at -> Timestamp,
    }
}

diesel::table! {
    role_assignments (email, role, scope) {
        email -> Text,
        role -> Text,
        scope -> Text,
        granted_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        owner_email -> Text,
        token_hash -> Text,
        jti -> Text,
        server_id -> Nullable<Text>,
        permissions -> Nullable<Text>,
        ip_restrictions -> Text,
        time_restrictions -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        revoked_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    gateways (id) {
        id -> Text,
        name -> Text,
        slug -> Text,
        url -> Text,
        transport -> Text,
        description -> Nullable<Text>,
        tags -> Text,
        enabled -> Bool,
        owner_email -> Nullable<Text>,
        team_id -> Nullable<Text>,
        visibility -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        prefix_tool_names -> Bool,
        auth_type -> Nullable<Text>,
        auth_secret -> Nullable<Text>,
        protocol_version -> Nullable<Text>,
        capabilities -> Text,
        reachable -> Bool,
        last_seen_at -> Nullable<Timestamp>,
        skipped -> Text,
        degraded_reason -> Nullable<Text>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        command -> Nullable<Text>,
    }
}

diesel::table! {
    /// Per-process call tallies per interval (see the `metric_rollups` migration).
    metric_rollups (instance, width, bucket, scope, key) {
        instance -> Text,
        width -> Integer,
        bucket -> BigInt,
        scope -> Text,
        key -> Text,
        calls -> BigInt,
        failures -> BigInt,
        duration_ms_sum -> Double,
        latency -> Nullable<Text>,
        last_call_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Clients of the built-in authorization server.
    oauth_clients (client_id) {
        client_id -> Text,
        client_name -> Nullable<Text>,
        redirect_uris -> Text,
        metadata -> Text,
        source -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Which clients each user consented to.
    oauth_consents (user_email, client_id) {
        user_email -> Text,
        client_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Authorization codes (hashed, single use).
    oauth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_email -> Text,
        redirect_uri -> Text,
        code_challenge -> Text,
        resource -> Text,
        scope -> Nullable<Text>,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        grant_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Grants: one per authorization, with its current refresh token and access token id.
    oauth_grants (id) {
        id -> Text,
        client_id -> Text,
        user_email -> Text,
        resource -> Text,
        scope -> Nullable<Text>,
        refresh_hash -> Text,
        access_jti -> Text,
        created_at -> Timestamp,
        refreshed_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    /// Refresh tokens already exchanged (a second use revokes the grant).
    oauth_used_refresh (refresh_hash) {
        refresh_hash -> Text,
        grant_id -> Text,
        used_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        actor -> Text,
        token_id -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        action -> Text,
        target_kind -> Text,
        target_id -> Nullable<Text>,
        target_name -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
    }
}

diesel::table! {
    tool_metrics (id) {
        id -> Text,
        tool_name -> Text,
        gateway_id -> Nullable<Text>,
        started_at -> Timestamp,
        duration_ms -> Double,
        success -> Bool,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    tools (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        integration_type -> Text,
        url -> Nullable<Text>,
        request_type -> Nullable<Text>,
        headers -> Text,
        input_schema -> Text,
        output_schema -> Nullable<Text>,
        annotations -> Text,
        tags -> Text,
        gateway_id -> Nullable<Text>,
        original_name -> Nullable<Text>,
        enabled -> Bool,
        owner_email -> Nullable<Text>,
        team_id -> Nullable<Text>,
        visibility -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        passthrough -> Text,
    }
}

diesel::table! {
    resources (id) {
        id -> Text,
        uri -> Nullable<Text>,
        uri_template -> Nullable<Text>,
        name -> Text,
        description -> Nullable<Text>,
        mime_type -> Nullable<Text>,
        content -> Nullable<Text>,
        tags -> Text,
        gateway_id -> Nullable<Text>,
        enabled -> Bool,
        owner_email -> Nullable<Text>,
        team_id -> Nullable<Text>,
        visibility -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        passthrough -> Text,
    }
}

diesel::table! {
    prompts (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        template -> Text,
        arguments -> Text,
        tags -> Text,
        gateway_id -> Nullable<Text>,
        original_name -> Nullable<Text>,
        enabled -> Bool,
        owner_email -> Nullable<Text>,
        team_id -> Nullable<Text>,
        visibility -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        passthrough -> Text,
    }
}

diesel::table! {
    servers (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        icon -> Nullable<Text>,
        tags -> Text,
        enabled -> Bool,
        owner_email -> Nullable<Text>,
        team_id -> Nullable<Text>,
        visibility -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    server_tools (server_id, tool_id) {
        server_id -> Text,
        tool_id -> Text,
        position -> Integer,
    }
}

diesel::table! {
    server_resources (server_id, resource_id) {
        server_id -> Text,
        resource_id -> Text,
        position -> Integer,
    }
}

diesel::table! {
    server_prompts (server_id, prompt_id) {
        server_id -> Text,
        prompt_id -> Text,
        position -> Integer,
    }
}

diesel::joinable!(team_members -> teams (team_id));
diesel::joinable!(team_members -> users (email));
diesel::joinable!(tools -> gateways (gateway_id));
diesel::joinable!(resources -> gateways (gateway_id));
diesel::joinable!(prompts -> gateways (gateway_id));
diesel::joinable!(server_tools -> servers (server_id));
diesel::joinable!(server_tools -> tools (tool_id));
diesel::joinable!(server_resources -> servers (server_id));
diesel::joinable!(server_resources -> resources (resource_id));
diesel::joinable!(server_prompts -> servers (server_id));
diesel::joinable!(server_prompts -> prompts (prompt_id));

diesel::table! {
    /// Users' own sealed tokens for upstreams that authenticate each user with OAuth.
    upstream_tokens (gateway_id, user_email) {
        gateway_id -> Text,
        user_email -> Text,
        sealed -> Text,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    bootstrap_secrets,
    users,
    teams,
    team_members,
    role_assignments,
    api_tokens,
    revoked_tokens,
    gateways,
    tools,
    resources,
    prompts,
    servers,
    server_tools,
    server_resources,
    server_prompts,
    tool_metrics,
    audit_log,
    metric_rollups,
    oauth_clients,
    oauth_consents,
    oauth_codes,
    oauth_grants,
    oauth_used_refresh,
    upstream_tokens,
);
