//! A plugin built against another protocol version is refused with both versions named.

use podctl_plugin::proto::member_runtime_server::{MemberRuntime, MemberRuntimeServer};
use podctl_plugin::proto::*;
use podctl_plugin::{Client, ClientError, PROTOCOL_VERSION};
use tonic::{Request, Response, Status};

/// Answers the handshake as a plugin of the next protocol version would; refuses the rest.
struct Newer;

#[tonic::async_trait]
impl MemberRuntime for Newer {
    async fn handshake(&self, _: Request<HandshakeRequest>) -> Result<Response<HandshakeReply>, Status> {
        Ok(Response::new(HandshakeReply {
            protocol_version: PROTOCOL_VERSION + 1,
            name: "newer".into(),
            version: "9.9".into(),
            ..Default::default()
        }))
    }
    async fn validate(&self, _: Request<Member>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("newer"))
    }
    async fn start(&self, _: Request<Member>) -> Result<Response<Started>, Status> {
        Err(Status::unimplemented("newer"))
    }
    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("newer"))
    }
    async fn kill(&self, _: Request<MemberRef>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("newer"))
    }
    async fn status(&self, _: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        Err(Status::unimplemented("newer"))
    }
    async fn wait(&self, _: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        Err(Status::unimplemented("newer"))
    }
}

#[tokio::test]
async fn a_plugin_of_another_protocol_version_is_refused() {
    let dir = std::env::temp_dir().join(format!("podctl-plugin-version-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("newer.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MemberRuntimeServer::new(Newer))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let mut client = Client::connect("newer", &socket).await.unwrap();
    let error = client.handshake().await.unwrap_err();
    assert!(
        matches!(error, ClientError::Version { theirs, ours, .. } if theirs == PROTOCOL_VERSION + 1 && ours == PROTOCOL_VERSION),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("speaks protocol version 2, podctl speaks 1"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
