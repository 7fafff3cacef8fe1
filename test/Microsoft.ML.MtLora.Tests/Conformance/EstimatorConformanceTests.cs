using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Tests.MlNet;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Tests.Conformance;

/// <summary>
/// The MTLoRA estimator and transformer through ML.NET's own estimator checks (<see cref="MlNetConformance.EstimatorWorkout"/>),
/// the way ML.NET's image models are built: a file-path column as the model's input, <c>LoadImages</c> inside the model.
/// </summary>
[Collection(SerialCollection.Name)] // Fit seeds torch's process-wide generator
public class EstimatorConformanceTests
{
    /// <summary>A view with only the file names: what a user scores (no labels), which the estimator must reject.</summary>
    private static IDataView NamesOnly(MLContext ml, IDataView files)
    {
        var names = new List<string>();
        using (var cursor = files.GetRowCursor([files.Schema["Name"]]))
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(files.Schema["Name"]);
            ReadOnlyMemory<char> name = default;
            while (cursor.MoveNext())
            {
                getter(ref name);
                names.Add(name.ToString());
            }
        }
        return ml.Data.LoadFromEnumerable(names.Select(n => new MtLoraTransformerTests.PathRow { Name = n }));
    }

    private sealed class NumericName
    {
        public float Name { get; set; }
    }

    [Fact]
    public void EstimatorWorkoutWithImagesOfAnySize()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var files = MtLoraEstimatorTests.LabelledFiles(ml, dir.Path, 3);
        var estimator = ml.Transforms.LoadImages("Image", dir.Path, "Name")
            .Append(ml.MultiTask().Trainers.MtLora(MtLoraEstimatorTests.OneStepOptions()));

        MlNetConformance.EstimatorWorkout(ml, estimator, files,
            validTransformInput: NamesOnly(ml, files),
            invalidInput: ml.Data.LoadFromEnumerable(new[] { new NumericName { Name = 1 } }),
            inspect: (transformer, inputSchema) =>
            {
                var output = transformer.GetOutputSchema(files.Schema);
                var score = (VectorDataViewType)output["SemsegScore"].Type;
                Assert.False(score.IsKnownSize);                                  // any image size: variable-size vectors
                Assert.Equal(TextDataViewType.Instance, inputSchema["Name"].Type); // the model's input is the path column
                Assert.Null(inputSchema.GetColumnOrNull("Image"));
            });
    }

    [Fact]
    public void EstimatorWorkoutWithImagesOfAKnownSize()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        // The files already have the target size, so ResizeImages hands out the loaded image itself, which LoadImages
        // disposes at its next call: the look-ahead of Transform must take each image before reading the next one.
        var files = MtLoraEstimatorTests.LabelledFiles(ml, dir.Path, 5, size: (40, 30));
        var estimator = ml.Transforms.LoadImages("Image", dir.Path, "Name")
            .Append(ml.Transforms.ResizeImages("Image", imageWidth: 40, imageHeight: 30))
            .Append(ml.MultiTask().Trainers.MtLora(MtLoraEstimatorTests.OneStepOptions()));

        MlNetConformance.EstimatorWorkout(ml, estimator, files,
            validTransformInput: NamesOnly(ml, files),
            inspect: (transformer, _) =>
            {
                var output = transformer.GetOutputSchema(files.Schema);
                Assert.Equal([21, 30, 40], ((VectorDataViewType)output["SemsegScore"].Type).Dimensions.ToArray());
                Assert.Equal([30, 40], ((VectorDataViewType)output["SaliencyProbability"].Type).Dimensions.ToArray());
                Assert.Equal([3, 30, 40], ((VectorDataViewType)output["NormalsPredicted"].Type).Dimensions.ToArray());
            });
    }

    /// <summary>Without training: the promise for an image column of unknown and of known size, against a transformer with the same tasks.</summary>
    [Theory]
    [InlineData(0, 0)]
    [InlineData(30, 40)]
    public void PromisedSchemaIsTheDeliveredOne(int height, int width)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(2));
        if (height > 0) data = ml.Transforms.ResizeImages("Image", imageWidth: width, imageHeight: height).Fit(data).Transform(data);
        // Labels are inputs of the estimator only; give them the loader's types.
        var schema = new DataViewSchema.Builder();
        schema.AddColumns(data.Schema);
        foreach (var task in DenseTasks.All)
            schema.AddColumn(task.LabelColumnName(), new VectorDataViewType(task == DenseTask.SurfaceNormals ? NumberDataViewType.Single : NumberDataViewType.Byte));
        var input = schema.ToSchema();

        var options = MtLoraEstimatorTests.OneStepOptions();
        var promised = ml.MultiTask().Trainers.MtLora(options).GetOutputSchema(MlNetConformance.Shape(input));
        using var model = MtLoraTestModel.Create(ml);
        MlNetConformance.CheckSameSchemaShape(promised, MlNetConformance.Shape(model.GetOutputSchema(input)));

        var normals = promised.Single(c => c.Name == "NormalsPredicted");
        Assert.Equal(height > 0 ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector, normals.Kind);
        Assert.Equal(MtLoraTransformer.LayoutAnnotationName, Assert.Single(normals.Annotations).Name);
        Assert.IsType<ImageDataViewType>(promised.Single(c => c.Name == "Image").ItemType);
    }
}
