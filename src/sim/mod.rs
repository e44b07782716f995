//! (in progress)
pub struct SimCluster;
impl SimCluster {
    pub async fn shutdown(self) {}
}
