//! How meshgate's plan nodes travel to a Ballista cluster.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::access::barrier::PolicyBarrierExec;

/// What starts an encoded [`PolicyBarrierExec`]; the table's name follows.
const BARRIER: &[u8] = b"meshgate.policy_barrier.v1\0";

/// Ballista's own codec plus meshgate's policy barrier, so a restricted
/// table's barrier holds on the executors as it does in the gateway: no
/// filter of the user's query is pushed below it there either.
#[derive(Debug, Default)]
pub struct MeshgatePhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for MeshgatePhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(table) = buf.strip_prefix(BARRIER) else {
            return self.ballista.try_decode(buf, inputs, ctx, converter);
        };
        let table = std::str::from_utf8(table)
            .map_err(|_| DataFusionError::Internal("policy barrier: table name".into()))?;
        let [input] = inputs else {
            return Err(DataFusionError::Internal(
                "policy barrier: takes one input".into(),
            ));
        };
        Ok(Arc::new(PolicyBarrierExec::new(
            input.clone(),
            table.to_owned(),
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        match node.downcast_ref::<PolicyBarrierExec>() {
            Some(barrier) => {
                buf.extend_from_slice(BARRIER);
                buf.extend_from_slice(barrier.table().as_bytes());
                Ok(())
            }
            None => self.ballista.try_encode(node, buf, converter),
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.ballista.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.ballista.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.ballista.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udwf(node, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::PhysicalPlanNode;

    #[test]
    fn a_policy_barrier_arrives_as_a_policy_barrier() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let barrier: Arc<dyn ExecutionPlan> = Arc::new(PolicyBarrierExec::new(
            Arc::new(EmptyExec::new(schema)),
            "tpch.public.lineitem".into(),
        ));
        let codec = MeshgatePhysicalCodec::default();
        let sent = PhysicalPlanNode::try_from_physical_plan(barrier, &codec).unwrap();
        let arrived = sent
            .try_into_physical_plan(&TaskContext::default(), &codec)
            .unwrap();
        let arrived = arrived.downcast_ref::<PolicyBarrierExec>().unwrap();
        assert_eq!(arrived.table(), "tpch.public.lineitem");
        assert!(arrived.children()[0].downcast_ref::<EmptyExec>().is_some());
    }
}
