// The Diesel schema of `migrations/`, kept in step by hand (`diesel print-schema` prints the same).

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        token_hash -> Text,
        next_event_seq -> BigInt,
        created_at -> BigInt,
        stored_keys -> BigInt,
        max_order_notional -> Nullable<BigInt>,
        max_open_orders -> Nullable<BigInt>,
        price_band_percent -> Nullable<BigInt>,
        halted -> Bool,
    }
}

diesel::table! {
    trading_state (id) {
        id -> Integer,
        halted -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    balances (account_id, asset) {
        account_id -> Text,
        asset -> Text,
        available -> BigInt,
        reserved -> BigInt,
    }
}

diesel::table! {
    ledger_entries (entry_key) {
        entry_key -> Text,
        account_id -> Text,
        asset -> Text,
        order_id -> Nullable<Text>,
        available_delta -> BigInt,
        reserved_delta -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (account_id, idem_key) {
        account_id -> Text,
        idem_key -> Text,
        fingerprint -> Text,
        status_code -> Integer,
        location -> Nullable<Text>,
        response_body -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        account_id -> Text,
        client_order_id -> Text,
        symbol -> Text,
        side -> Text,
        order_type -> Text,
        qty -> BigInt,
        limit_price -> Nullable<BigInt>,
        protection_price -> Nullable<BigInt>,
        status -> Text,
        filled_qty -> BigInt,
        filled_notional -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        placement_sent -> Bool,
        last_action_seq -> BigInt,
        owner -> Text,
        owner_epoch -> BigInt,
        time_in_force -> Text,
        expires_at -> Nullable<BigInt>,
        expiring -> Bool,
        version -> BigInt,
        replacing_qty -> Nullable<BigInt>,
        replacing_limit_price -> Nullable<BigInt>,
        stop_price -> Nullable<BigInt>,
        is_open -> Bool,
    }
}

diesel::table! {
    order_actions (order_id, seq) {
        order_id -> Text,
        seq -> BigInt,
        kind -> Text,
        detail -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    fills (order_id, fill_id) {
        order_id -> Text,
        fill_id -> Text,
        qty -> BigInt,
        price -> BigInt,
        source -> Text,
        received_at -> BigInt,
        position_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    positions (account_id, symbol) {
        account_id -> Text,
        symbol -> Text,
        qty -> BigInt,
        avg_cost -> BigInt,
        realized_pnl -> BigInt,
        fills -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    outbox (account_id, seq) {
        account_id -> Text,
        seq -> BigInt,
        kind -> Text,
        payload -> Text,
        created_at -> BigInt,
        published_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    alarms (alarm_key) {
        alarm_key -> Text,
        kind -> Text,
        order_id -> Nullable<Text>,
        detail -> Text,
        first_at -> BigInt,
        last_at -> BigInt,
        count -> BigInt,
    }
}

diesel::table! {
    admin_token (id) {
        id -> Integer,
        token_hash -> Text,
        set_at -> BigInt,
    }
}

diesel::table! {
    demo_account (account_id) {
        account_id -> Text,
        token -> Text,
    }
}

diesel::table! {
    exchange_events (event_key) {
        event_key -> Text,
        event_id -> Text,
        client_order_id -> Text,
        event_type -> Text,
        payload -> Text,
        order_id -> Nullable<Text>,
        received_at -> BigInt,
    }
}

diesel::table! {
    engines (id) {
        id -> Text,
        epoch -> BigInt,
        expires_at -> BigInt,
        renewed_at -> BigInt,
    }
}

diesel::table! {
    order_notes (owner, order_id) {
        owner -> Text,
        order_id -> Text,
    }
}

diesel::table! {
    fix_sessions (session_id) {
        session_id -> Text,
        next_sender_seq -> BigInt,
        next_target_seq -> BigInt,
        reset_owed -> Bool,
        app_watermark -> BigInt,
        created_at -> BigInt,
        holder -> Nullable<Text>,
        holder_epoch -> BigInt,
    }
}

diesel::table! {
    fix_messages (session_id, seq_num) {
        session_id -> Text,
        seq_num -> BigInt,
        msg_type -> Text,
        payload -> Binary,
    }
}

diesel::joinable!(balances -> accounts (account_id));
diesel::joinable!(fills -> orders (order_id));
diesel::joinable!(order_actions -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    admin_token,
    alarms,
    balances,
    demo_account,
    engines,
    exchange_events,
    fills,
    fix_messages,
    fix_sessions,
    idempotency_keys,
    ledger_entries,
    order_actions,
    order_notes,
    orders,
    outbox,
    positions,
    trading_state,
);
