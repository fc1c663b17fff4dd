//! A misbehaving plugin, for tests of podctl's side: `FAKE_PLUGIN=hang` creates its socket and
//! never answers; `FAKE_PLUGIN=newer` answers the handshake with the next protocol version.
//! Started like a real one: `fake-plugin --socket PATH`.

use podctl_plugin::proto::member_runtime_server::{MemberRuntime, MemberRuntimeServer};
use podctl_plugin::proto::*;
use podctl_plugin::PROTOCOL_VERSION;
use tonic::{Request, Response, Status};

struct Newer;

fn refused<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("a fake plugin"))
}

#[tonic::async_trait]
impl MemberRuntime for Newer {
    async fn handshake(&self, _: Request<HandshakeRequest>) -> Result<Response<HandshakeReply>, Status> {
        Ok(Response::new(HandshakeReply {
            protocol_version: PROTOCOL_VERSION + 1,
            name: "wasmtime".into(),
            version: "99.0".into(),
            ..Default::default()
        }))
    }
    async fn validate(&self, _: Request<Member>) -> Result<Response<Validated>, Status> {
        refused()
    }
    async fn start(&self, _: Request<Member>) -> Result<Response<Started>, Status> {
        refused()
    }
    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<Empty>, Status> {
        refused()
    }
    async fn kill(&self, _: Request<MemberRef>) -> Result<Response<Empty>, Status> {
        refused()
    }
    async fn status(&self, _: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        refused()
    }
    async fn wait(&self, _: Request<MemberRef>) -> Result<Response<MemberStatus>, Status> {
        refused()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let socket = match args.iter().position(|a| a == "--socket") {
        Some(i) => std::path::PathBuf::from(&args[i + 1]),
        None => panic!("usage: fake-plugin --socket PATH"),
    };
    let listener = tokio::net::UnixListener::bind(&socket).expect("socket");
    match std::env::var("FAKE_PLUGIN").as_deref() {
        Ok("newer") => {
            tonic::transport::Server::builder()
                .add_service(MemberRuntimeServer::new(Newer))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .expect("serves");
        }
        _ => {
            // Accepts connections and never says a word.
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }
    }
}
