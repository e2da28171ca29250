//! RabbitMQ vhosts provisioned per service and environment on a real server (the RabbitMQ node
//! `scripts/setup-test-env.sh` starts on loopback, managed through its HTTP API): a service's
//! user publishes and consumes in its own vhost and cannot open another's, nor the default
//! one; rotation refuses the old password; detach keeps the queued messages; destroy deletes
//! the vhost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use faas_platform::databases::rabbitmq::{Present, RabbitAdmin, url};
use faas_platform::databases::{password, principal};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// The test node's management API (`FAAS_TEST_RABBITMQ_API`) and AMQP port.
fn api() -> String {
    std::env::var("FAAS_TEST_RABBITMQ_API")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:55673".into())
}

fn amqp_port() -> u16 {
    std::env::var("FAAS_TEST_RABBITMQ_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(55672)
}

async fn open(user: &str, pw: &str, vhost: &str) -> Result<Connection, String> {
    let own = url(user, pw, "127.0.0.1", amqp_port());
    let uri = format!("{}/{vhost}", own.rsplit_once('/').unwrap().0);
    Connection::connect(&uri, ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn each_service_gets_its_own_vhost_and_nothing_of_another() {
    let admin = RabbitAdmin::connect(&api())
        .await
        .unwrap_or_else(|e| panic!("the test RabbitMQ (run scripts/setup-test-env.sh): {e}"));
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let a = principal(&format!("api-{run}"), "prod", "events");
    let b = principal(&format!("web-{run}"), "prod", "events");
    let (pa, pb) = (password(), password());
    admin.ensure(&a, &pa).await.unwrap();
    admin.ensure(&b, &pb).await.unwrap();
    admin.ensure(&a, &pa).await.unwrap();

    // A publishes a persistent message in its own vhost, confirmed by the broker.
    let conn = open(&a, &pa, &a).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_declare(
        "orders".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "orders".into(),
        BasicPublishOptions::default(),
        b"order 7",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();

    // B cannot open A's vhost; A cannot open the default one; a wrong password opens nothing.
    let refused = open(&b, &pb, &a).await.err().unwrap();
    assert!(refused.to_lowercase().contains("access"), "{refused}");
    assert!(open(&a, &pa, "%2F").await.is_err());
    assert!(open(&a, &pb, &a).await.is_err());

    // Rotation: the new password opens, the old one no longer does.
    let new = password();
    admin.rotate(&a, &new).await.unwrap();
    open(&a, &new, &a).await.unwrap();
    assert!(open(&a, &pa, &a).await.is_err());

    // Detach: no way in, the message kept; ensured again, it is there.
    admin.detach(&a).await.unwrap();
    assert_eq!(
        admin.present(&a).await.unwrap(),
        Present {
            user: true,
            vhost: true,
            permitted: false
        }
    );
    assert!(open(&a, &new, &a).await.is_err());
    admin.ensure(&a, &new).await.unwrap();
    let conn = open(&a, &new, &a).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let got = ch
        .basic_get("orders".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message queued before the detach");
    assert_eq!(got.delivery.data, b"order 7");
    conn.close(200, "done".into()).await.unwrap();

    // Destroy: gone, and may be repeated.
    for p in [&a, &b] {
        admin.destroy(p).await.unwrap();
        admin.destroy(p).await.unwrap();
        assert_eq!(
            admin.present(p).await.unwrap(),
            Present {
                user: false,
                vhost: false,
                permitted: false
            }
        );
    }
}
