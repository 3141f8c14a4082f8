//! "Does it answer?" checks: a real PostgreSQL login plus `SELECT 1`, and a real MQTT CONNECT
//! that must be accepted. A TCP connect alone is not enough: a port can be taken by something
//! else, and PostgreSQL accepts TCP before it accepts logins.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::options::MqttEndpoint;

/// Logs in to `url` and runs `SELECT 1` within `timeout`; the error is a human-readable reason.
pub(crate) async fn postgres(url: &str, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let mut connection = PgConnection::connect(url).await?;
        sqlx::query("SELECT 1").execute(&mut connection).await?;
        connection.close().await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Connects to the broker as an anonymous MQTT 3.1.1 client and waits for an accepting CONNACK.
pub(crate) async fn mqtt(endpoint: &MqttEndpoint, timeout: Duration) -> Result<(), String> {
    let id = format!(
        "bst-probe-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut options = MqttOptions::new(id, endpoint.host.clone(), endpoint.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 4);
    let attempt = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return if ack.code == ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("broker refused the connection: {:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no CONNACK within {timeout:?}")),
    };
    if result.is_ok() {
        // A clean DISCONNECT keeps broker logs free of "connection lost" noise; best effort.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    }
    result
}
