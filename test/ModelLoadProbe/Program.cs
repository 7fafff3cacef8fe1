using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Checkpoints;
using TorchSharp;

// Usage: ModelLoadProbe [--threads N] [--path-column NAME] <model.zip> <out.safetensors> <image file>...
// Loads the model with mlContext.Model.Load only (no registration call of any kind), prints the input schema stored in
// the model.zip (one line "input-schema<TAB>name<TAB>type" per column), runs Transform over a view of image paths (text
// column NAME, default "Name"), and writes every Single/Byte/Int32 vector or scalar column the model adds, row by row,
// as tensors "<row>.<column>" to a safetensors file. Exit code 0 on success; 1 with the error on stderr otherwise.
// --threads: libtorch's intra-op threads; bit-identical results need the same count as the process compared with.
string pathColumn = "Name";
while (args.Length >= 2 && args[0].StartsWith("--", StringComparison.Ordinal))
{
    if (args[0] == "--threads") torch.set_num_threads(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
    else if (args[0] == "--path-column") pathColumn = args[1];
    else break;
    args = args[2..];
}
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: ModelLoadProbe [--threads N] [--path-column NAME] <model.zip> <out.safetensors> <image file>...");
    return 2;
}
try
{
    var ml = new MLContext(seed: 1);
    var model = ml.Model.Load(args[0], out var inputSchema);
    foreach (var c in inputSchema) Console.WriteLine($"input-schema\t{c.Name}\t{c.Type}");
    var definition = SchemaDefinition.Create(typeof(ImagePath));
    definition[nameof(ImagePath.Name)].ColumnName = pathColumn;
    var input = ml.Data.LoadFromEnumerable(args.Skip(2).Select(p => new ImagePath { Name = p }), definition);
    var output = model.Transform(input);
    var added = output.Schema.Where(c => !c.IsHidden && input.Schema.GetColumnOrNull(c.Name) == null && c.Name != "Image").ToList();
    var tensors = new Dictionary<string, torch.Tensor>();
    using var cursor = output.GetRowCursor(added);
    int row = 0;
    while (cursor.MoveNext())
    {
        foreach (var c in added)
        {
            var key = $"{row}.{c.Name}";
            if (c.Type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Single)
            {
                VBuffer<float> v = default;
                cursor.GetGetter<VBuffer<float>>(c)(ref v);
                tensors[key] = torch.tensor(v.DenseValues().ToArray());
            }
            else if (c.Type is VectorDataViewType { ItemType: var b } && b == NumberDataViewType.Byte)
            {
                VBuffer<byte> v = default;
                cursor.GetGetter<VBuffer<byte>>(c)(ref v);
                tensors[key] = torch.tensor(v.DenseValues().ToArray());
            }
            else if (c.Type == NumberDataViewType.Int32)
            {
                int v = 0;
                cursor.GetGetter<int>(c)(ref v);
                tensors[key] = torch.tensor(new[] { v });
            }
        }
        row++;
    }
    SafeTensors.Save(args[1], tensors);
    (model as IDisposable)?.Dispose();
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine(e.ToString());
    return 1;
}

internal sealed class ImagePath
{
    public string Name { get; set; } = "";
}
