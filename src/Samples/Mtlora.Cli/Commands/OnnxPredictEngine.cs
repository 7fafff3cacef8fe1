using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Onnx;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora predict --engine onnx --model model.onnx</c>: scores the images with an exported model in ONNX Runtime
/// (<see cref="MtLoraOnnxModel"/>: the transformer's pre- and post-processing around the ONNX graph) and hands
/// <see cref="PredictCommand"/> a data view with the columns the transformer would have added, so the PNGs are written by
/// the same code as with model.zip.
/// </summary>
internal static class OnnxPredictEngine
{
    /// <summary>The engine names <c>--engine</c> accepts.</summary>
    public const string TorchSharp = "torchsharp";

    /// <summary>ONNX Runtime on an exported model.onnx.</summary>
    public const string Onnx = "onnx";

    /// <summary>Loads the model, with a clear message for a missing file or an ONNX model that is not an exported MTLoRA model.</summary>
    public static MtLoraOnnxModel Load(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new CliCommon.UsageException("give --model <model.onnx>.");
        if (!File.Exists(path)) throw new CliCommon.UsageException($"--model: file '{path}' does not exist (expected a model.onnx written by 'mtlora export-onnx').");
        try
        {
            return MtLoraOnnxModel.Load(path);
        }
        catch (InvalidDataException e)
        {
            throw new CliCommon.UsageException($"--model: {e.Message}");
        }
    }

    /// <summary>
    /// A lazy view over <paramref name="files"/> (one row per file, in order) with the path, the decoded image, its size and
    /// the prediction column of each task, named and typed as <see cref="MtLoraTransformer"/>'s columns.
    /// </summary>
    public static IDataView Score(MtLoraOnnxModel model, IReadOnlyList<string> files, string pathColumn, string imageColumn)
    {
        var schema = new DataViewSchema.Builder();
        schema.AddColumn(pathColumn, TextDataViewType.Instance);
        schema.AddColumn(imageColumn, new Microsoft.ML.Transforms.Image.ImageDataViewType());
        schema.AddColumn(MtLoraColumnNames.Height, NumberDataViewType.Int32);
        schema.AddColumn(MtLoraColumnNames.Width, NumberDataViewType.Int32);
        foreach (var t in model.Tasks)
            schema.AddColumn(t.PredictionColumnName(), new VectorDataViewType(t.IsClassification() ? NumberDataViewType.Byte : NumberDataViewType.Single));
        return new PredictionView(schema.ToSchema(), model, files);
    }

    /// <summary>Rows computed on demand by a cursor, one ONNX Runtime run per image.</summary>
    private sealed class PredictionView(DataViewSchema schema, MtLoraOnnxModel model, IReadOnlyList<string> files) : IDataView
    {
        public bool CanShuffle => false;

        public DataViewSchema Schema => schema;

        public long? GetRowCount() => files.Count;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
            new Cursor(schema, model, files, columnsNeeded.Any(c => c.Index >= 2));

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            [GetRowCursor(columnsNeeded, rand)];

        private sealed class Cursor(DataViewSchema schema, MtLoraOnnxModel model, IReadOnlyList<string> files, bool predict) : DataViewRowCursor
        {
            private long _position = -1;
            private MLImage? _image;
            private MtLoraOnnxPrediction? _prediction;

            public override DataViewSchema Schema => schema;

            public override long Position => _position;

            public override long Batch => 0;

            public override bool IsColumnActive(DataViewSchema.Column column) => true;

            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

            public override bool MoveNext()
            {
                _image?.Dispose();
                _image = null;
                _prediction = null;
                if (++_position >= files.Count) return false;
                _image = MLImage.CreateFromFile(files[(int)_position]);
                if (predict) _prediction = model.Predict([_image])[0];
                return true;
            }

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                Delegate getter = column.Index switch
                {
                    0 => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = files[(int)_position].AsMemory()),
                    1 => (ValueGetter<MLImage>)((ref MLImage v) => v = _image!),
                    2 => (ValueGetter<int>)((ref int v) => v = _prediction!.Height),
                    3 => (ValueGetter<int>)((ref int v) => v = _prediction!.Width),
                    _ when column.Type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Byte =>
                        (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> v) => v = Vector<byte>(_prediction!.Columns[column.Name])),
                    _ => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => v = Vector<float>(_prediction!.Columns[column.Name])),
                };
                return (ValueGetter<TValue>)getter;
            }

            private static VBuffer<T> Vector<T>(Array values) => new(values.Length, (T[])values);

            protected override void Dispose(bool disposing)
            {
                if (disposing) _image?.Dispose();
                _image = null;
                base.Dispose(disposing);
            }
        }
    }
}
