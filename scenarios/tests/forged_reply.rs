#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
//! Issue 20, item 5: replies forged through a coordinator. Someone who sees a login sends a fast
//! public request with the victim's reply topic and correlation data; the coordinator answers it
//! on the victim's topic before the login is done. The harness client takes only the reply whose
//! `request_digest` is the digest of what it sent, and still gets its real one.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use bigskies_scenarios::provision;
use bigskies_scenarios::scenario::client::Client;
use bigskies_scenarios::stack::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_provoked_with_the_victims_topic_is_not_taken_for_the_real_one() {
    let p = provision::shared().await.unwrap();
    let stack = Stack::prepare(p, "forged-reply", StackOptions::default())
        .await
        .unwrap();
    let topics = stack.topics.clone();
    let (victim, _task) = Client::connect(stack.bus_config(), topics.clone())
        .await
        .unwrap();
    let (attacker, _task2) = Client::connect(stack.bus_config(), topics.clone())
        .await
        .unwrap();
    let from = victim.mark();
    stack.start("security").await.unwrap();
    let health = topics.health("security");
    victim
        .wait_for(from, Duration::from_secs(30), |s| {
            s.topic == health && s.body["status"] == "healthy"
        })
        .await
        .expect("security serves");

    let validate = topics.request("security", "auth", "validate");
    for i in 0..10 {
        let cid = format!("login-{i}");
        let login =
            json!({"username": "admin", "password": stack.admin_password, "correlation_id": cid})
                .to_string()
                .into_bytes();
        let real = {
            let (victim, cid) = (victim.clone(), cid.clone());
            tokio::spawn(async move {
                victim
                    .request("security/auth/login", login, &cid, Duration::from_secs(20))
                    .await
            })
        };
        // The login (argon2) takes far longer than a token check: the forged reply comes first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        attacker
            .bus()
            .publish_request(
                &validate,
                json!({"token": "x", "correlation_id": cid}).to_string(),
                victim.reply_topic(),
                Some(Bytes::from(cid.clone().into_bytes())),
            )
            .await
            .unwrap();
        let reply = real.await.unwrap().unwrap();
        assert!(
            reply["token"].as_str().is_some_and(|t| !t.is_empty()),
            "login {i}: the victim took a reply it did not ask for: {reply}"
        );
    }
    stack.stop("security").await.unwrap();
    victim.close().await;
    attacker.close().await;
    stack.shutdown().await;
}
